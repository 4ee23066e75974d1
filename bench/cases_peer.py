"""Profilis 1.0.0 rows: emit_req, @profile_function and the collector's drain.

Run by ``bench.worker`` inside ``.bench/peer-venv`` (built by ``bench.peer_env``), where
``import profilis`` is the released 1.0.0 from PyPI; nothing of it is copied here. Same
workload and timing code as our rows in ``bench.cases_ours``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from bench.measure import CountingSink, DrainTarget, time_statement, time_wrapper_overhead
from bench.registry import CaseResult, Settings
from bench.workload import (
    DRAIN_EVENTS_PEER,
    DUR_NS,
    EMIT_QUEUE_SIZE,
    ROUTE,
    STATUS,
    discard,
    drain_result,
    overhead_result,
    wait_until_empty,
)

__all__ = ["PEER_VERSION", "decorator", "drain", "emit_req"]

PEER_VERSION = "1.0.0"


def _peer(module: str) -> Any:
    """Import ``profilis.<module>`` from the peer, refusing to time our package by mistake.

    Through ``importlib`` and typed ``Any``: type checkers would otherwise read our
    ``profilis`` (same name, different API) into the peer's signatures.
    """
    root = importlib.import_module("profilis")
    ours = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "library")
    origin = os.path.abspath(root.__file__ or "")
    if root.__version__ != PEER_VERSION or origin.startswith(ours + os.sep):
        raise RuntimeError(
            f"expected profilis {PEER_VERSION} from the peer venv, got "
            f"{root.__version__} from {origin}"
        )
    return importlib.import_module(f"profilis.{module}")


def _live_collector() -> Any:
    collector_type = _peer("core.async_collector").AsyncCollector
    return collector_type(discard, queue_size=EMIT_QUEUE_SIZE, name="bench-peer")


def _collector_info(collector: Any) -> dict[str, object]:
    return {
        "profilis": PEER_VERSION,
        "enqueued": collector.enqueued,
        "exported": collector.processed,
        "dropped": {"queue": collector.dropped_oldest},
        "queue_capacity": EMIT_QUEUE_SIZE,
    }


def emit_req(settings: Settings) -> CaseResult:
    collector = _live_collector()
    try:
        timing = time_statement(
            "emit(route, status, dur_ns)",
            {
                "emit": _peer("core.emitter").Emitter(collector).emit_req,
                "route": ROUTE,
                "status": STATUS,
                "dur_ns": DUR_NS,
            },
            repeat=settings.repeat,
            rep_s=settings.rep_s,
            between_reps=lambda: wait_until_empty(lambda: collector.queue_depth),
        )
        wait_until_empty(lambda: collector.queue_depth)
        info = {"timing": timing.as_dict(), **_collector_info(collector)}
    finally:
        collector.close(timeout=5.0)
    return CaseResult(timing.median_ns, "ns/op", list(timing.reps_ns), info)


def decorator(settings: Settings) -> CaseResult:
    collector = _live_collector()
    emitter = _peer("core.emitter").Emitter(collector)
    try:
        bare, wrapped = time_wrapper_overhead(
            _peer("decorators.profile").profile_function(emitter),
            repeat=settings.repeat,
            rep_s=settings.rep_s,
            between_reps=lambda: wait_until_empty(lambda: collector.queue_depth),
        )
        wait_until_empty(lambda: collector.queue_depth)
        # 1.0.0 queues an FN and an FN_META event per call; ours queues one FN event.
        info = {**_collector_info(collector), "events_per_call": 2}
    finally:
        collector.close(timeout=5.0)
    return overhead_result(bare, wrapped, info)


def _open_drain_target(sink: CountingSink, queue_size: int) -> DrainTarget:
    collector_type = _peer("core.async_collector").AsyncCollector
    collector = collector_type(sink, queue_size=queue_size, name="bench-peer-drain")
    # The peer has no flush: close() is its only "deliver everything now" call.
    return DrainTarget(
        enqueue=collector.enqueue,
        finish=lambda: collector.close(timeout=60.0),
        dropped=lambda: int(collector.dropped_oldest),
        close=lambda: None,
    )


def drain(settings: Settings) -> CaseResult:
    return drain_result(_open_drain_target, DRAIN_EVENTS_PEER, settings)
