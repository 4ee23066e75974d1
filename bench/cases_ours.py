"""Our rows: the Emitter's three emits, the @profile decorator, and the collector's drain.

Run in our venv by ``bench.worker``; every collector is live (writer thread running) with a
no-op sink, as in production minus the exporter. Peers: ``bench.cases_baseline`` (floor,
OTel) and ``bench.cases_peer`` (Profilis 1.0.0), fed the same ``bench.workload``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.measure import CountingSink, DrainTarget, time_statement, time_wrapper_overhead
from bench.registry import CaseResult, Settings
from bench.workload import (
    DB_QUERY,
    DB_VENDOR,
    DRAIN_EVENTS_OURS,
    DUR_NS,
    EMIT_QUEUE_SIZE,
    FN_NAME,
    ROUTE,
    STATUS,
    discard,
    drain_result,
    overhead_result,
)

__all__ = ["decorator", "drain", "emit_db", "emit_fn", "emit_http"]


def _health_info(collector: Any) -> dict[str, object]:
    health = collector.health()
    return {
        "enqueued": health.enqueued,
        "exported": health.exported,
        "dropped": dict(health.dropped),
        "queue_capacity": health.queue_capacity,
    }


def _time_emit(
    method: str, stmt: str, args: Mapping[str, object], settings: Settings
) -> CaseResult:
    from profilis import __version__
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter

    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-ours"
    )
    try:
        emitter = Emitter(collector)
        timing = time_statement(
            stmt,
            {"emit": getattr(emitter, method), **args},
            repeat=settings.repeat,
            rep_s=settings.rep_s,
            between_reps=lambda: collector.flush(timeout=10.0),
        )
        collector.flush(timeout=10.0)
        info = {"timing": timing.as_dict(), "profilis": __version__, **_health_info(collector)}
    finally:
        collector.close(timeout=5.0)
    return CaseResult(timing.median_ns, "ns/op", list(timing.reps_ns), info)


def emit_http(settings: Settings) -> CaseResult:
    args = {"route": ROUTE, "status": STATUS, "dur_ns": DUR_NS}
    return _time_emit("emit_http", "emit(route, status, dur_ns)", args, settings)


def emit_fn(settings: Settings) -> CaseResult:
    return _time_emit("emit_fn", "emit(fn, dur_ns)", {"fn": FN_NAME, "dur_ns": DUR_NS}, settings)


def emit_db(settings: Settings) -> CaseResult:
    args = {"query": DB_QUERY, "dur_ns": DUR_NS, "vendor": DB_VENDOR}
    return _time_emit("emit_db", "emit(query, dur_ns, rows=1, db_vendor=vendor)", args, settings)


def decorator(settings: Settings) -> CaseResult:
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.decorators.profile import profile

    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-ours"
    )
    try:
        bare, wrapped = time_wrapper_overhead(
            profile(Emitter(collector)),
            repeat=settings.repeat,
            rep_s=settings.rep_s,
            between_reps=lambda: collector.flush(timeout=10.0),
        )
        collector.flush(timeout=10.0)
        info = {**_health_info(collector), "events_per_call": 1}
    finally:
        collector.close(timeout=5.0)
    return overhead_result(bare, wrapped, info)


def _open_drain_target(sink: CountingSink, queue_size: int) -> DrainTarget:
    from profilis.core.async_collector import AsyncCollector

    collector: AsyncCollector[object] = AsyncCollector(
        sink, queue_size=queue_size, name="bench-drain"
    )
    return DrainTarget(
        enqueue=collector.enqueue,
        finish=lambda: collector.flush(timeout=60.0),
        dropped=lambda: sum(collector.health().dropped.values()),
        close=lambda: collector.close(timeout=5.0),
    )


def drain(settings: Settings) -> CaseResult:
    return drain_result(_open_drain_target, DRAIN_EVENTS_OURS, settings)
