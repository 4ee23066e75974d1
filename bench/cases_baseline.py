"""Reference rows: the Python floor for an HTTP event, and an OpenTelemetry SDK span.

Run in our venv by ``bench.worker``. The floor is what no telemetry library written in
Python can beat; OTel is the mainstream alternative. Our rows are in ``bench.cases_ours``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from bench.measure import time_statement
from bench.registry import CaseResult, Settings
from bench.workload import DUR_NS, EMIT_QUEUE_SIZE, ROUTE, STATUS

__all__ = ["floor", "otel_span"]


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


def otel_span(settings: Settings) -> CaseResult:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.version import __version__ as otel_version

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    # The same queue size as our collector gets, so neither side is timed dropping.
    provider.add_span_processor(
        BatchSpanProcessor(DiscardExporter(), max_queue_size=EMIT_QUEUE_SIZE)
    )
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
