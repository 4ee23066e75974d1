"""Delivery of processed batches to sinks, with per-sink retry and capped backoff.

Used only by the collector's writer thread, so nothing here takes a lock. A failing sink keeps
its undelivered batches in a bounded retry buffer and is retried after an exponentially
growing pause (capped); it is never switched off. A batch fanned out to several sinks is
settled once every sink has delivered or given up on it, so each event is counted exactly
once: exported, or dropped for reason ``export``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Delivery", "SinkHealth", "SinkSlot"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """Counters of one sink, as seen by the collector."""

    name: str
    #: Events the sink accepted.
    delivered: int
    #: Events given up on after the retry buffer overflowed.
    dropped: int
    #: Sink calls that raised.
    errors: int
    #: Events waiting in the retry buffer.
    pending: int
    #: True while the sink is paused after a failure.
    backing_off: bool


class Delivery(Generic[T]):
    """One processed batch on its way to every sink."""

    __slots__ = ("batch", "failed", "remaining")

    def __init__(self, batch: list[T], sinks: int) -> None:
        self.batch = batch
        self.remaining = sinks
        self.failed = False


class SinkSlot(Generic[T]):
    """One sink plus its retry state."""

    __slots__ = (
        "_backoff_s",
        "_initial_backoff_s",
        "_max_backoff_s",
        "_pending",
        "_pending_capacity",
        "_pending_events",
        "_settle",
        "delivered",
        "dropped",
        "errors",
        "name",
        "next_attempt",
        "sink",
    )

    def __init__(
        self,
        sink: Callable[[list[T]], object],
        *,
        settle: Callable[[Delivery[T], bool], None],
        pending_capacity: int,
        initial_backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self.sink = sink
        self.name = str(getattr(sink, "name", None) or type(sink).__name__)
        self._settle = settle
        self._pending: deque[Delivery[T]] = deque()
        self._pending_events = 0
        self._pending_capacity = pending_capacity
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = 0.0
        #: Monotonic time before which the sink is not called again (0: no pause).
        self.next_attempt = 0.0
        self.delivered = 0
        self.dropped = 0
        self.errors = 0

    def reset(self) -> None:
        """Forget all state (used in a forked child: the parent owns those batches)."""
        self._pending.clear()
        self._pending_events = 0
        self._backoff_s = 0.0
        self.next_attempt = 0.0
        self.delivered = self.dropped = self.errors = 0

    def health(self) -> SinkHealth:
        return SinkHealth(
            name=self.name,
            delivered=self.delivered,
            dropped=self.dropped,
            errors=self.errors,
            pending=self._pending_events,
            backing_off=self.next_attempt > 0.0,
        )

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def offer(self, delivery: Delivery[T]) -> None:
        """Deliver now, or queue behind earlier failures so batches keep their order."""
        if self._pending or not self._send(delivery):
            self._park(delivery)

    def retry(self, now: float, *, force: bool = False) -> None:
        """Resend parked batches in order once the pause is over (or at shutdown: ``force``)."""
        if not self._pending or (not force and now < self.next_attempt):
            return
        while self._pending:
            delivery = self._pending[0]
            if not self._send(delivery):
                return
            self._pending.popleft()
            self._pending_events -= len(delivery.batch)

    def give_up(self) -> None:
        """Settle every parked batch as failed (shutdown ran out of time)."""
        while self._pending:
            self._drop(self._pending.popleft())
        self._pending_events = 0

    def _send(self, delivery: Delivery[T]) -> bool:
        try:
            self.sink(delivery.batch)
        except Exception:
            self.errors += 1
            self._backoff_s = min(
                self._max_backoff_s, max(self._initial_backoff_s, self._backoff_s * 2)
            )
            self.next_attempt = time.monotonic() + self._backoff_s
            return False
        self._backoff_s = 0.0
        self.next_attempt = 0.0
        self.delivered += len(delivery.batch)
        self._settle(delivery, True)
        return True

    def _park(self, delivery: Delivery[T]) -> None:
        self._pending.append(delivery)
        self._pending_events += len(delivery.batch)
        # Bounded memory: the oldest parked batches go first, counted, never silently.
        while self._pending_events > self._pending_capacity and len(self._pending) > 1:
            oldest = self._pending.popleft()
            self._pending_events -= len(oldest.batch)
            self._drop(oldest)

    def _drop(self, delivery: Delivery[T]) -> None:
        self.dropped += len(delivery.batch)
        self._settle(delivery, False)
