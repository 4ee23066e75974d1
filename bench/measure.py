"""The measuring helpers every benchmark case shares: per-operation latency and drain rate.

Standard library only: it is imported both in our venv and in the peer's (Profilis 1.0.0)
venv, so both sides are timed by the very same code. Cases live in ``bench.cases_*``; the
smoke test in ``tests/bench`` exercises ``time_statement`` directly.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "CountingSink",
    "DrainSample",
    "DrainTarget",
    "Timing",
    "compile_loop",
    "time_drain",
    "time_statement",
    "time_wrapper_overhead",
]

#: The timed loop is generated so the statement runs inline with its names as fast locals:
#: calling through a helper per iteration would add more overhead than the cheapest cases
#: cost. The empty-loop twin (``stmt="pass"``) is subtracted from every repetition. The
#: thread's CPU time is read too: wall time minus it is what other threads (a collector's
#: writer holding the GIL) took from the caller.
_LOOP_TEMPLATE = """
def _timed_loop(_number, _clock, _cpu_clock, {params}):
    _iterations = _repeat(None, _number)
    _cpu = _cpu_clock()
    _start = _clock()
    for _ in _iterations:
        {stmt}
    _end = _clock()
    return _end - _start, _cpu_clock() - _cpu
"""


@dataclass(frozen=True)
class Timing:
    """The cost of one operation: the median and every repetition, loop overhead removed."""

    median_ns: float
    reps_ns: tuple[float, ...]
    #: Operations per repetition (chosen so one repetition lasts about ``rep_s``).
    number: int
    #: Per-operation cost of the empty loop, already subtracted from ``reps_ns``.
    loop_overhead_ns: float
    #: The calling thread's CPU time per operation (median, empty loop subtracted).
    cpu_median_ns: float

    def as_dict(self) -> dict[str, object]:
        return {
            "median_ns": self.median_ns,
            "reps_ns": list(self.reps_ns),
            "number": self.number,
            "loop_overhead_ns": self.loop_overhead_ns,
            "cpu_median_ns": self.cpu_median_ns,
        }


def compile_loop(stmt: str, names: list[str]) -> Callable[..., tuple[int, int]]:
    """``_timed_loop(number, clock, cpu_clock, **names)``: ``stmt`` run ``number`` times."""
    for name in names:
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"namespace key {name!r} must be a public identifier")
    source = _LOOP_TEMPLATE.format(params=", ".join(names), stmt=stmt)
    scope: dict[str, object] = {"_repeat": itertools.repeat}
    exec(compile(source, f"<bench loop: {stmt}>", "exec"), scope)
    loop = scope["_timed_loop"]
    assert callable(loop)
    return loop


def time_statement(
    stmt: str,
    namespace: Mapping[str, object] | None = None,
    *,
    repeat: int = 7,
    rep_s: float = 0.05,
    between_reps: Callable[[], object] | None = None,
) -> Timing:
    """Time one-line ``stmt`` (its names bound from ``namespace``); median ns per run.

    The calibration runs double as the warm-up (they also let CPython 3.11+ specialise the
    loop's bytecode). ``between_reps`` runs untimed before each repetition, e.g. to let a
    collector catch up so every repetition starts from the same queue depth.
    """
    if repeat < 1 or rep_s <= 0:
        raise ValueError("repeat must be >= 1 and rep_s > 0")
    values = dict(namespace or {})
    names = sorted(values)
    loop = compile_loop(stmt, names)
    empty = compile_loop("pass", names)
    clocks = (time.perf_counter_ns, time.thread_time_ns)
    target_ns = rep_s * 1e9

    number = 1
    while True:
        elapsed, _ = loop(number, *clocks, **values)
        # 0.8: a run aimed at the target may land a little short; close enough.
        if elapsed >= 0.8 * target_ns or number >= 1 << 30:
            break
        # Grow tenfold while samples are too short to trust, then aim straight for the target.
        number = number * 10 if elapsed < 1e6 else int(number * target_ns / elapsed) + 1

    overheads: list[tuple[int, int]] = []
    samples: list[tuple[int, int]] = []
    for _ in range(repeat):
        if between_reps is not None:
            between_reps()
        # Collected but left enabled: cyclic garbage is part of the real cost of some cases
        # (OpenTelemetry spans), and every case gets the same clean start.
        gc.collect()
        overheads.append(empty(number, *clocks, **values))
        samples.append(loop(number, *clocks, **values))
    overhead = statistics.median(wall for wall, _ in overheads)
    cpu_overhead = statistics.median(cpu for _, cpu in overheads)
    reps = tuple((wall - overhead) / number for wall, _ in samples)
    return Timing(
        median_ns=statistics.median(reps),
        reps_ns=reps,
        number=number,
        loop_overhead_ns=overhead / number,
        cpu_median_ns=statistics.median((cpu - cpu_overhead) / number for _, cpu in samples),
    )


def time_wrapper_overhead(
    wrap: Callable[[Callable[[int], int]], Callable[[int], int]],
    *,
    repeat: int = 7,
    rep_s: float = 0.05,
    between_reps: Callable[[], object] | None = None,
) -> tuple[Timing, Timing]:
    """Time a trivial function bare and wrapped by ``wrap`` (a decorator): (bare, wrapped).

    The overhead a user pays is ``wrapped.median_ns - bare.median_ns``.
    """

    def work(x: int) -> int:
        return x

    def work_wrapped(x: int) -> int:
        return x

    wrapped = wrap(work_wrapped)
    bare_timing = time_statement("fn(1)", {"fn": work}, repeat=repeat, rep_s=rep_s)
    wrapped_timing = time_statement(
        "fn(1)", {"fn": wrapped}, repeat=repeat, rep_s=rep_s, between_reps=between_reps
    )
    return bare_timing, wrapped_timing


class CountingSink:
    """A sink that only counts, and notes the moment the expected total has arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.done_ns: int | None = None

    def __call__(self, batch: list[object]) -> None:
        self.received += len(batch)
        if self.received >= self.expected and self.done_ns is None:
            self.done_ns = time.perf_counter_ns()


@dataclass(frozen=True)
class DrainTarget:
    """A live collector, seen through the four calls a drain run needs."""

    enqueue: Callable[[object], object]
    #: Returns once every event that will ever reach the sink has reached it.
    finish: Callable[[], object]
    dropped: Callable[[], int]
    close: Callable[[], object]


@dataclass(frozen=True)
class DrainSample:
    """One drain run: ``events`` offered, ``delivered`` to the sink, in ``elapsed_ns``."""

    events: int
    delivered: int
    dropped: int
    elapsed_ns: int

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.elapsed_ns * 1e9 if self.elapsed_ns > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "elapsed_ns": self.elapsed_ns,
            "events_per_s": self.events_per_s,
        }


def time_drain(
    open_target: Callable[[CountingSink, int], DrainTarget], events: int, queue_size: int
) -> DrainSample:
    """Enqueue ``events`` as fast as one producer can into a fresh collector, then finish.

    ``open_target(sink, queue_size)`` builds the collector. The clock runs from the first
    enqueue until the sink has seen the last event (or until ``finish`` returns, when some
    were dropped and never arrive): the rate the pipeline sustains end to end.
    """
    sink = CountingSink(events)
    target = open_target(sink, queue_size)
    enqueue = target.enqueue
    event = {"kind": "HTTP", "ts_ns": 0, "dur_ns": 1, "method": "GET", "route": "/", "status": 200}
    try:
        gc.collect()
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, events):
            enqueue(event)
        target.finish()
        end = sink.done_ns if sink.done_ns is not None else time.perf_counter_ns()
        dropped = target.dropped()
    finally:
        target.close()
    return DrainSample(events, sink.received, dropped, end - start)
