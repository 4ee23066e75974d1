"""IngestState: what the sidecar knows, updated one datagram at a time.

``ingest`` decodes an untrusted datagram (``profilis.exporters.collector.decode_envelope``),
folds its events into the shared ``EventMetrics`` and the sender's health into per-worker
state. Agents report cumulative counters, so the sidecar adds per-worker *differences*: a
worker that restarts (its ``seq`` starts again) or expires never makes a total go backwards,
and one lost datagram loses no drop count. Any process of the pod can write to the socket, so
the worker table is capped and each envelope's counters must be plausible before they count
(``_implausible``): a refused datagram is counted under a reason and changes nothing else.
``profilis_sidecar.metrics`` exposes the result; ``profilis_sidecar.ingest`` calls ``ingest``
from its receive thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from profilis.exporters.collector import (
    REJECT_REASONS,
    JsonCodec,
    WireError,
    WireHealth,
    decode_envelope,
    load_codec,
)
from profilis.exporters.prometheus import EventMetrics

__all__ = ["DROP_REASONS", "REFUSE_REASONS", "IngestState", "Totals", "WorkerState"]

#: Reasons of ``profilis_events_dropped_total`` (DESIGN.md).
DROP_REASONS: Final = ("queue", "transport", "decode")
#: Reasons of ``profilis_sidecar_rejected_datagrams_total`` beyond the wire format's own: a
#: new agent process while the worker table is full; counters no agent could have reported.
REFUSE_REASONS: Final = ("workers", "implausible")
#: Largest value of any health field: ~35 years of 1,000 events/s, or 4 months of 100,000/s.
#: Far below 2**53, so totals stay exact floats and every later drop still shows.
_COUNTER_MAX: Final = 2**40
#: Fastest a process can plausibly count events and send datagrams, and the burst (seconds
#: at that rate) it may report at once, e.g. the drops of a minute the sidecar was paused.
_EVENTS_PER_S_MAX: Final = 10_000_000
_DATAGRAMS_PER_S_MAX: Final = 100_000
_BURST_S: Final = 60.0
#: Agents name no service unless configured; the sidecar's own setting fills that in.
AGENT_DEFAULT_SERVICE: Final = "unknown_service"
#: Expired workers remembered (oldest forgotten first), so one that comes back after a
#: pause resumes from its last counters instead of being counted again from zero.
_TOMBSTONES: Final = 4096

WorkerKey = tuple[str, int]  # (service, pid): two containers of a pod may share a pid


@dataclass(slots=True)
class WorkerState:
    """One agent process, as its last datagram described it."""

    service: str
    pid: int
    first_seen_s: float
    last_seen_s: float
    seq: int
    health: WireHealth
    events_received: int = 0
    batches_lost: int = 0
    restarts: int = 0
    # How much the counters and the sequence may still jump (refilled at the rates above).
    event_credit: float = _EVENTS_PER_S_MAX * _BURST_S
    seq_credit: float = _DATAGRAMS_PER_S_MAX * _BURST_S
    credited_s: float = 0.0  # when the credit was last refilled


@dataclass(frozen=True, slots=True)
class Totals:
    """The sidecar's counters since it started (a consistent snapshot)."""

    datagrams: int
    events_received: int
    rejected: dict[str, int]
    dropped: dict[str, int]
    exported: int
    batches_lost: int
    workers_live: int
    workers_expired: int
    workers: list[WorkerState] = field(default_factory=list)


class IngestState:
    """Decodes datagrams and keeps the aggregated counters and per-worker state.

    One thread calls ``ingest``/``expire``; any thread may read ``totals``. ``forward``,
    when given, receives every accepted envelope's events (the forwarder checks them).
    ``clock`` is monotonic seconds, injectable so tests control expiry. ``max_workers`` caps
    the agent processes tracked at once: datagrams of further ones are refused until some
    expire.
    """

    def __init__(
        self,
        metrics: EventMetrics,
        *,
        default_service: str = AGENT_DEFAULT_SERVICE,
        max_datagram_bytes: int = 65_536,
        worker_expiry_s: float = 30.0,
        max_workers: int = 1024,
        forward: Callable[[list[object]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        codec: JsonCodec | None = None,
    ) -> None:
        self._metrics = metrics
        self._default_service = default_service
        self._max_bytes = max_datagram_bytes
        self._expiry_s = worker_expiry_s
        self._max_workers = max_workers
        self._forward = forward
        self._clock = clock
        self._codec = codec or load_codec()
        self._lock = threading.Lock()
        self._workers: dict[WorkerKey, WorkerState] = {}
        self._expired: OrderedDict[WorkerKey, WorkerState] = OrderedDict()
        self._datagrams = 0
        self._events = 0
        self._rejected: dict[str, int] = dict.fromkeys((*REJECT_REASONS, *REFUSE_REASONS), 0)
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._exported = 0
        self._lost = 0
        self._workers_expired = 0

    # ------------------------------------------------------------------ receive thread
    def ingest(self, data: bytes | bytearray | memoryview) -> None:
        """Account for one datagram: accepted, or rejected with a reason. Never raises."""
        try:
            envelope = decode_envelope(data, codec=self._codec, max_bytes=self._max_bytes)
        except WireError as err:
            with self._lock:
                self._datagrams += 1
                self._rejected[err.reason] += 1
                self._dropped["decode"] += err.events
            return
        service, seq, events = envelope.service, envelope.seq, envelope.events
        now = self._clock()
        with self._lock:
            self._datagrams += 1
            worker = self._worker(service, envelope.pid, seq, now)
            refused = "workers" if worker is None else _implausible(worker, seq, envelope.health)
            if worker is None or refused:
                self._rejected[refused] += 1
                self._dropped["decode"] += len(events)
                return
            self._workers[service, envelope.pid] = worker
            self._expired.pop((service, envelope.pid), None)
            self._account(worker, seq, envelope.health)
            worker.last_seen_s = now
        label = self._default_service if service == AGENT_DEFAULT_SERVICE else service
        invalid = self._metrics.observe(events, label)
        valid = len(events) - invalid
        with self._lock:
            self._events += valid
            self._dropped["decode"] += invalid
            worker.events_received += valid
        if self._forward is not None and events:
            self._forward(events)

    def _worker(self, service: str, pid: int, seq: int, now: float) -> WorkerState | None:
        """The sender's state (not yet stored), or None when the table has no room for it."""
        key = (service, pid)
        worker = self._workers.get(key)
        if worker is not None:
            _refill(worker, now)
            return worker
        if len(self._workers) >= self._max_workers:
            return None
        worker = self._expired.get(key)
        if worker is not None:
            _refill(worker, now)
            return worker
        # First sight: everything the process counted so far is news to this sidecar
        # (e.g. the drops while the sidecar was down), so the baseline is zero.
        return WorkerState(service, pid, now, now, seq - 1, _FIRST, credited_s=now)

    def _account(self, worker: WorkerState, seq: int, health: WireHealth) -> None:
        previous = worker.health
        if seq <= worker.seq:
            # The sequence started again: a new process that reuses the pid.
            worker.restarts += 1
            previous = _FIRST
        elif seq > worker.seq + 1:
            gap = seq - worker.seq - 1
            worker.batches_lost += gap
            self._lost += gap
            worker.seq_credit -= gap
        if previous is not _FIRST:
            worker.event_credit -= _largest_growth(previous, health)
        dropped = self._dropped
        dropped["queue"] += _growth(previous.dropped_queue, health.dropped_queue)
        dropped["transport"] += _growth(previous.dropped_transport, health.dropped_transport)
        self._exported += _growth(previous.exported, health.exported)
        worker.seq = seq
        worker.health = health

    def expire(self) -> int:
        """Forget workers silent for longer than the expiry; return how many went."""
        deadline = self._clock() - self._expiry_s
        with self._lock:
            gone = [key for key, w in self._workers.items() if w.last_seen_s < deadline]
            for key in gone:
                self._expired[key] = self._workers.pop(key)
                self._expired.move_to_end(key)
            while len(self._expired) > _TOMBSTONES:
                self._expired.popitem(last=False)
            self._workers_expired += len(gone)
        return len(gone)

    # ------------------------------------------------------------------ any thread
    def totals(self) -> Totals:
        with self._lock:
            return Totals(
                datagrams=self._datagrams,
                events_received=self._events,
                rejected=dict(self._rejected),
                dropped=dict(self._dropped),
                exported=self._exported,
                batches_lost=self._lost,
                workers_live=len(self._workers),
                workers_expired=self._workers_expired,
                workers=[replace(w) for w in self._workers.values()],
            )

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock


_FIRST: Final = WireHealth()  # the baseline of a process seen for the first time


def _refill(worker: WorkerState, now: float) -> None:
    """Credit for the time since the worker's last datagram, up to one burst."""
    elapsed = max(0.0, now - worker.credited_s)
    worker.credited_s = now
    worker.event_credit = min(
        worker.event_credit + elapsed * _EVENTS_PER_S_MAX, _EVENTS_PER_S_MAX * _BURST_S
    )
    worker.seq_credit = min(
        worker.seq_credit + elapsed * _DATAGRAMS_PER_S_MAX, _DATAGRAMS_PER_S_MAX * _BURST_S
    )


def _implausible(worker: WorkerState, seq: int, health: WireHealth) -> str:
    """``"implausible"`` if no agent could send these counters after its last ones, else ``""``.

    A first sight or a restart (a smaller ``seq``) may report any history up to the counter
    cap; a running process may add only what its credit allows, which refills with time.
    """
    if max(_fields(health)) > _COUNTER_MAX:
        return "implausible"
    # The agent's queue accounts for every event it took: the dropped and queued ones too.
    if health.dropped_queue + health.queue_depth > health.enqueued:
        return "implausible"
    if seq <= worker.seq or worker.health is _FIRST:
        return ""
    if seq - worker.seq - 1 > worker.seq_credit:
        return "implausible"
    if _largest_growth(worker.health, health) > worker.event_credit:
        return "implausible"
    return ""


def _fields(health: WireHealth) -> tuple[int, ...]:
    return (
        health.queue_depth,
        health.queue_capacity,
        health.enqueued,
        health.dropped_queue,
        health.dropped_transport,
        health.exported,
    )


def _largest_growth(before: WireHealth, now: WireHealth) -> int:
    """The largest rise of the counters the sidecar sums into its totals."""
    return max(
        _growth(before.dropped_queue, now.dropped_queue),
        _growth(before.dropped_transport, now.dropped_transport),
        _growth(before.exported, now.exported),
    )


def _growth(before: int, now: int) -> int:
    """How much a cumulative counter grew; a smaller value means it was reset."""
    return now - before if now >= before else now
