"""Reference rows: the Python floors (an HTTP event, a timing decorator) and the alternatives.

Run in our venv by ``bench.worker``. The floors are what no telemetry library written in
Python can beat; OTel and prometheus_client are the mainstream alternatives. Our rows are in
``bench.cases_ours``; ``bench.subjects`` reuses these builders for the instruction counts.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from bench.measure import time_statement, time_wrapper_overhead
from bench.registry import CaseResult, Settings
from bench.workload import DUR_NS, EMIT_QUEUE_SIZE, ROUTE, STATUS, overhead_result

__all__ = ["floor", "handrolled_decorator", "otel_span", "prometheus_observe"]

P = ParamSpec("P")
R = TypeVar("R")


def _make_floor_emit() -> Callable[[str, int, int], None]:
    """The cheapest function Python allows that records the same event as ``emit_http``."""
    buf: deque[dict[str, object]] = deque(maxlen=EMIT_QUEUE_SIZE)

    # Clock and append are bound as defaults: local loads, no attribute or global lookups.
    def floor_emit(
        route: str,
        status: int,
        dur_ns: int,
        method: str = "GET",
        _clock: Callable[[], int] = time.time_ns,
        _append: Callable[[dict[str, object]], None] = buf.append,
    ) -> None:
        _append(
            {
                "kind": "HTTP",
                "ts_ns": _clock(),
                "dur_ns": dur_ns,
                "method": method,
                "route": route,
                "status": status,
            }
        )

    return floor_emit


def floor(settings: Settings) -> CaseResult:
    timing = time_statement(
        "emit(route, status, dur_ns)",
        {"emit": _make_floor_emit(), "route": ROUTE, "status": STATUS, "dur_ns": DUR_NS},
        repeat=settings.repeat,
        rep_s=settings.rep_s,
    )
    return CaseResult(timing.median_ns, "ns/op", list(timing.reps_ns), {"timing": timing.as_dict()})


def make_handrolled_profile(
    records: deque[tuple[str, int]],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The timing decorator anyone writes by hand: perf_counter_ns around the call, then
    ``(name, dur_ns)`` appended to a deque. No ids, no event dict, no sampling: the floor
    for a decorator that records every call, errors included."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        name = func.__qualname__
        append = records.append
        clock = time.perf_counter_ns

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                append((name, clock() - start))

        return wrapper

    return decorate


def handrolled_decorator(settings: Settings) -> CaseResult:
    records: deque[tuple[str, int]] = deque(maxlen=EMIT_QUEUE_SIZE)
    bare, wrapped = time_wrapper_overhead(
        make_handrolled_profile(records), repeat=settings.repeat, rep_s=settings.rep_s
    )
    return overhead_result(bare, wrapped, {"events_per_call": 1})


def make_prometheus_observe() -> dict[str, object]:
    """The names for ``PROMETHEUS_STMT``: a labelled histogram in a registry of its own."""
    from prometheus_client import CollectorRegistry, Histogram

    histogram = Histogram(
        "bench_request_duration_seconds",
        "Bench request duration",
        ["route", "method"],
        registry=CollectorRegistry(),
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    )
    return {"labels": histogram.labels, "route": ROUTE, "dur_s": DUR_NS / 1e9}


#: The label lookup is part of the cost: an instrumented request knows its route only then.
PROMETHEUS_STMT = 'labels(route, "GET").observe(dur_s)'


def prometheus_observe(settings: Settings) -> CaseResult:
    from importlib.metadata import version

    timing = time_statement(
        PROMETHEUS_STMT, make_prometheus_observe(), repeat=settings.repeat, rep_s=settings.rep_s
    )
    return CaseResult(
        timing.median_ns,
        "ns/op",
        list(timing.reps_ns),
        {"timing": timing.as_dict(), "prometheus_client": version("prometheus_client")},
    )


def make_otel_tracer_provider() -> Any:
    """An SDK TracerProvider with a batch processor and a discarding exporter."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    # The same queue size as our collector gets, so neither side is timed dropping.
    provider.add_span_processor(
        BatchSpanProcessor(DiscardExporter(), max_queue_size=EMIT_QUEUE_SIZE)
    )
    return provider


def otel_span(settings: Settings) -> CaseResult:
    from opentelemetry.sdk.version import __version__ as otel_version

    provider = make_otel_tracer_provider()
    start_span: Callable[..., Any] = provider.get_tracer("bench").start_span
    try:
        timing = time_statement(
            'start_span("x").end()',
            {"start_span": start_span},
            repeat=settings.repeat,
            rep_s=settings.rep_s,
            between_reps=provider.force_flush,
        )
    finally:
        provider.shutdown()
    return CaseResult(
        timing.median_ns,
        "ns/op",
        list(timing.reps_ns),
        {"timing": timing.as_dict(), "opentelemetry_sdk": otel_version},
    )
