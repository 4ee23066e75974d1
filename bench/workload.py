"""The inputs every side of the comparison is fed, and the result shapes they share.

Standard library only (imported in the peer's venv too). Used by the ``bench.cases_*``
modules; the numbers here are the workload, the timing itself is ``bench.measure``'s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from bench.measure import CountingSink, DrainTarget, Timing, time_drain
from bench.registry import CaseResult, Settings

__all__ = [
    "DB_QUERY",
    "DB_VENDOR",
    "DRAIN_EVENTS_OURS",
    "DRAIN_EVENTS_PEER",
    "DUR_NS",
    "EMIT_QUEUE_SIZE",
    "FN_NAME",
    "OVERFLOW_EVENTS",
    "OVERFLOW_QUEUE_SIZE",
    "ROUTE",
    "STATUS",
    "discard",
    "drain_result",
    "overhead_result",
    "scaled",
    "wait_until_empty",
]

ROUTE = "/orders/{id}"
STATUS = 200
DUR_NS = 1_234_567
FN_NAME = "shop.orders.load_order"
DB_QUERY = "SELECT id, total FROM orders WHERE id = ?"
DB_VENDOR = "sqlite"

#: Queue size for the latency rows (ours, peer, OTel and the floor's deque alike). A tight
#: loop outruns any writer between two GIL hand-offs (5 ms, tens of thousands of events), so
#: a small queue would time the drop path instead of the normal one; drops are reported.
EMIT_QUEUE_SIZE = 1 << 16

#: Drain rows: one producer, queue large enough to hold every event (no drop allowed).
DRAIN_EVENTS_OURS = 1_000_000
#: The peer takes a lock and wakes its writer per event; fewer events keep the run short.
DRAIN_EVENTS_PEER = 200_000
#: Above-capacity run (information only): this many events into the default queue size.
OVERFLOW_EVENTS = 200_000
OVERFLOW_QUEUE_SIZE = 2048


def discard(batch: Sequence[object]) -> None:
    """The no-op sink: the rows measure the pipeline, not an exporter."""


def scaled(events: int, scale: float) -> int:
    return max(1_000, int(events * scale))


def wait_until_empty(depth: Callable[[], int], timeout_s: float = 10.0) -> None:
    """Poll until a queue is empty, so each repetition starts from the same state."""
    deadline = time.monotonic() + timeout_s
    while depth() and time.monotonic() < deadline:
        time.sleep(0.001)


def drain_result(
    open_target: Callable[[CountingSink, int], DrainTarget], events: int, settings: Settings
) -> CaseResult:
    """Drain rate below capacity (median of fresh runs), plus drops above capacity (info)."""
    events = scaled(events, settings.drain_scale)
    samples = [time_drain(open_target, events, events) for _ in range(settings.drain_repeat)]
    overflow = time_drain(
        open_target, scaled(OVERFLOW_EVENTS, settings.drain_scale), OVERFLOW_QUEUE_SIZE
    )
    rates = [s.events_per_s for s in samples]
    return CaseResult(
        statistics.median(rates),
        "events/s",
        rates,
        {
            "events": events,
            "queue_size": events,
            # Every run, not just the median one: a single lost event fails the target.
            "dropped": sum(s.dropped for s in samples),
            "undelivered": sum(s.events - s.delivered for s in samples),
            "runs": [s.as_dict() for s in samples],
            "overflow": {"queue_size": OVERFLOW_QUEUE_SIZE, **overflow.as_dict()},
        },
    )


def overhead_result(bare: Timing, wrapped: Timing, info: dict[str, object]) -> CaseResult:
    """Decorator overhead: each wrapped repetition minus the bare call's median."""
    reps = [rep - bare.median_ns for rep in wrapped.reps_ns]
    return CaseResult(
        wrapped.median_ns - bare.median_ns,
        "ns/op",
        reps,
        {"bare": bare.as_dict(), "wrapped": wrapped.as_dict(), **info},
    )
