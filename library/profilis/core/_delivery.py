"""Delivery of processed batches to sinks, with per-sink retry and capped backoff.

Used only by the collector's writer thread, so nothing here takes a lock. A failing sink keeps
its undelivered batches in a bounded retry buffer and is retried after an exponentially
growing pause (capped); it is never switched off. A batch fanned out to several sinks is
settled once every sink has delivered or given up on it, so each event is counted exactly
once: exported, or dropped for reason ``export``. What a sink raised is logged with its
traceback: the first failure at once, then at most one line per interval while it goes on,
with the number of failures left unlogged in between.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["FAILURE_LOG_INTERVAL_S", "Delivery", "SinkHealth", "SinkSlot"]

T = TypeVar("T")
log = logging.getLogger("profilis.collector")

#: While a sink keeps failing, one warning (with the latest exception) at most this often.
FAILURE_LOG_INTERVAL_S = 60.0
#: What a sink written for Profilis 1.x events typically raises on 2.0 events (a missing
#: key or attribute, a str where it expected a bool): such a failure's log line says why.
_V1_SYMPTOMS = (KeyError, AttributeError, TypeError)
_V1_HINT = (
    '; if this sink was written for Profilis 1.x events (kind "REQ", error as a bool), '
    "create the collector with v1_events=True (see docs/migration.md)"
)


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
        "_clock",
        "_failure_reported",
        "_failures_unlogged",
        "_initial_backoff_s",
        "_last_failure_log",
        "_max_backoff_s",
        "_pending",
        "_pending_capacity",
        "_pending_events",
        "_settle",
        "_v1_hint",
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
        v1_hint: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``v1_hint``: whether a 1.x-looking failure's line suggests ``v1_events=True``
        (not when the collector converts already); ``clock``: monotonic seconds."""
        self.sink = sink
        # A function is named as written ("make_app.<locals>.sink"), an object by its class.
        self.name = str(
            getattr(sink, "name", None)
            or getattr(sink, "__qualname__", None)
            or type(sink).__name__
        )
        self._settle = settle
        self._pending: deque[Delivery[T]] = deque()
        self._pending_events = 0
        self._pending_capacity = pending_capacity
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._v1_hint = v1_hint
        self._clock = clock
        self._backoff_s = 0.0
        #: Monotonic time before which the sink is not called again (0: no pause).
        self.next_attempt = 0.0
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self._failures_unlogged = 0
        self._failure_reported = False  # a warning went out and no recovery line yet
        self._last_failure_log = -FAILURE_LOG_INTERVAL_S

    def reset(self) -> None:
        """Forget all state (used in a forked child: the parent owns those batches)."""
        self._pending.clear()
        self._pending_events = 0
        self._backoff_s = 0.0
        self.next_attempt = 0.0
        self.delivered = self.dropped = self.errors = 0
        self._failures_unlogged = 0
        self._failure_reported = False
        self._last_failure_log = -FAILURE_LOG_INTERVAL_S

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
        except Exception as exc:
            self.errors += 1
            self._backoff_s = min(
                self._max_backoff_s, max(self._initial_backoff_s, self._backoff_s * 2)
            )
            self.next_attempt = self._clock() + self._backoff_s
            self._log_failure(exc)
            return False
        if self._failure_reported:
            self._failure_reported = False
            log.info("profilis: sink %s recovered (%d failed calls so far)", self.name, self.errors)
        self._backoff_s = 0.0
        self.next_attempt = 0.0
        self.delivered += len(delivery.batch)
        self._settle(delivery, True)
        return True

    def _log_failure(self, exc: Exception) -> None:
        """At most one line per interval and sink (the first failure at once), never one a call."""
        now = self._clock()
        if now - self._last_failure_log < FAILURE_LOG_INTERVAL_S:
            self._failures_unlogged += 1
            return
        unlogged = self._failures_unlogged
        log.warning(
            "profilis: sink %s failed (%s)%s; retrying in %.2f s%s",
            self.name,
            describe(exc),
            f"; {unlogged} more failures since the last report" if unlogged else "",
            self._backoff_s,
            _V1_HINT if self._v1_hint and isinstance(exc, _V1_SYMPTOMS) else "",
            exc_info=exc,
        )
        self._failures_unlogged = 0
        self._failure_reported = True
        self._last_failure_log = now

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


def describe(exc: BaseException) -> str:
    """``OSError: [ENOSPC] No space left on device: 'path'``: the errno's name, greppable."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and isinstance(code, int) and code in errno.errorcode:
        where = f": {exc.filename!r}" if exc.filename is not None else ""
        return f"{type(exc).__name__}: [{errno.errorcode[code]}] {exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"
