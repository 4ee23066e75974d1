"""AsyncCollector: the bounded, non-blocking buffer between instrumentation and exporters.

Producers (the app's threads) call ``enqueue``: a length check and a deque append, no lock.
One named daemon writer thread, woken by a full batch or by the flush interval, pops
batches, runs the processors and hands each batch to every sink (``_delivery``). Every event
is accounted for: ``enqueued == exported + dropped + filtered + queue_depth + in_flight``.
The writer is rebuilt in a forked child, and ``atexit`` drains what is left. Settings the
caller leaves out come from ``PROFILIS_*`` (``profilis.config.resolve_setting``), read once here.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from profilis._compat import warn_deprecated
from profilis._validation import check_bool, check_float, check_int
from profilis.compat import notice_plain_function_sinks
from profilis.compat import v1_events as _to_v1_events
from profilis.config import resolve_setting
from profilis.core._delivery import Delivery, SinkHealth, SinkSlot

__all__ = ["AsyncCollector", "CollectorHealth"]

T = TypeVar("T")
log = logging.getLogger("profilis.collector")

#: Drop summaries are logged at most this often (a log line per dropped event would turn an
#: overload into an outage).
DROP_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """A snapshot of a collector's counters (exact once producers are quiet)."""

    #: Events handed to ``enqueue`` since start (or since fork, in a child).
    enqueued: int
    #: Events every sink accepted.
    exported: int
    #: Events lost, by reason: ``queue`` (buffer full), ``processor`` (a processor raised),
    #: ``export`` (a sink's retry buffer overflowed or shutdown ran out of time); and
    #: ``disabled`` (only on a collector built disabled: every event it was handed).
    dropped: Mapping[str, int]
    #: Events removed on purpose by processors (sampling, exclusions): not drops.
    filtered: int
    #: Sink calls that raised.
    export_errors: int
    queue_depth: int
    queue_capacity: int
    #: Events taken from the queue and not yet settled (being exported, or awaiting a retry).
    in_flight: int
    sinks: tuple[SinkHealth, ...]

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class AsyncCollector(Generic[T]):
    """Batches events on a background thread and fans them out to sinks.

    ``sink`` is one callable (a callable sequence too) or a sequence of them; each gets every
    processed batch. ``drop_oldest=True`` evicts the oldest queued event when full, ``False``
    refuses the new one; both count the drop. ``queue_size``, ``batch_max``,
    ``flush_interval``, ``drop_oldest`` and ``enabled`` left as ``None`` take
    ``PROFILIS_QUEUE_SIZE``, ``PROFILIS_BATCH_MAX``, ``PROFILIS_FLUSH_INTERVAL``,
    ``PROFILIS_DROP_OLDEST`` and ``PROFILIS_ENABLED``, else 2048, 128, 0.1 s, True, True.
    A disabled collector starts no thread, calls no sink and counts what it is handed as
    ``dropped["disabled"]``. ``v1_events=True`` gives the sinks Profilis 1.x events
    (``profilis.compat.v1_events``, after the other processors); ``False`` says they read
    2.0 events, which also silences the notice logged for a plain-function sink when neither
    is said. Arguments are validated here, never on the hot path.
    """

    # Set by _reset_state (at start and again in a forked child).
    _evicted: itertools.count[int]
    _rejected: itertools.count[int]
    _popped: int
    _exported: int
    _filtered: int
    _dropped_processor: int
    _dropped_export: int
    _wake: threading.Event
    _wake_requested: bool
    _progress: threading.Condition
    _deadline: float
    _last_drop_log: float
    _logged_drops: int

    def __init__(
        self,
        sink: Callable[[list[T]], object] | Sequence[Callable[[list[T]], object]],
        *,
        queue_size: int | None = None,
        batch_max: int | None = None,
        flush_interval: float | None = None,
        drop_oldest: bool | None = None,
        processors: Iterable[Callable[[list[T]], list[T]]] = (),
        v1_events: bool | None = None,
        enabled: bool | None = None,
        name: str = "profilis-collector",
        retry_initial_backoff_s: float = 0.05,
        retry_max_backoff_s: float = 5.0,
        close_timeout_s: float = 2.0,
        max_consecutive_sink_failures: int | None = None,
    ) -> None:
        if max_consecutive_sink_failures is not None:
            warnings.warn(
                "AsyncCollector(max_consecutive_sink_failures=) is ignored and deprecated: "
                "Profilis 2 retries a failing sink with backoff and never switches it off; "
                "remove the argument",
                DeprecationWarning,
                stacklevel=2,
            )
        self._capacity = check_int(
            "queue_size",
            resolve_setting("queue_size", queue_size),
            minimum=1,
            maximum=10_000_000,
        )
        self._batch_max = check_int(
            "batch_max", resolve_setting("batch_max", batch_max), minimum=1, maximum=1_000_000
        )
        self._flush_interval = check_float(
            "flush_interval",
            resolve_setting("flush_interval_s", flush_interval),
            minimum=0.0,
            maximum=3600.0,
            min_inclusive=False,
        )
        self._drop_oldest = check_bool("drop_oldest", resolve_setting("drop_oldest", drop_oldest))
        self._enabled = check_bool("enabled", resolve_setting("enabled", enabled))
        if v1_events is not None:
            check_bool("v1_events", v1_events)
        initial = check_float(
            "retry_initial_backoff_s",
            retry_initial_backoff_s,
            minimum=0.0,
            maximum=3600.0,
            min_inclusive=False,
        )
        ceiling = check_float(
            "retry_max_backoff_s", retry_max_backoff_s, minimum=initial, maximum=3600.0
        )
        self._close_timeout_s = check_float(
            "close_timeout_s", close_timeout_s, minimum=0.0, maximum=3600.0
        )
        # A callable first: a list subclass with __call__ is one sink, not a list of them.
        sinks = [sink] if callable(sink) else list(sink) if isinstance(sink, Sequence) else []
        if not sinks or not all(callable(s) for s in sinks):
            raise TypeError("sink must be a callable or a non-empty sequence of callables")
        self._processors = tuple(processors)
        if not all(callable(p) for p in self._processors):
            raise TypeError("processors must be callables taking and returning a batch")
        if v1_events:
            to_v1 = cast("Callable[[list[T]], list[T]]", _to_v1_events)
            self._processors = (*self._processors, to_v1)
        self.name = name
        if v1_events is None:
            notice_plain_function_sinks(name, sinks)
        self._slots = [
            SinkSlot(
                s,
                settle=self._settle,
                pending_capacity=self._capacity,
                initial_backoff_s=initial,
                max_backoff_s=ceiling,
                v1_hint=not v1_events,
            )
            for s in sinks
        ]
        # The deque object lives as long as the collector (a forked child clears it rather
        # than replacing it), so callers may cache ``enqueue`` safely.
        self._buf: deque[T] = deque()
        self._wake_at = self._batch_max - 1
        self._closed = False
        if not self._enabled:
            # No queue at all: the emitters' and ``enqueue``'s full-queue branch then refuses
            # and counts every event, so the enabled hot path carries no extra check.
            self._capacity, self._drop_oldest = 0, False
        self._writer: threading.Thread | None = None
        self._reset_state()
        _live.add(self)
        if self._enabled:
            self._start_writer()
        else:
            log.debug("profilis: collector %s is disabled: no writer, no sink called", name)

    # ------------------------------------------------------------------ hot path
    def enqueue(self, item: T) -> None:
        """Queue one event. Never blocks, never raises; a full queue drops and counts."""
        try:
            buf = self._buf
            depth = len(buf)
            if depth >= self._capacity:
                if not self._drop_oldest:
                    next(self._rejected)
                    return
                try:
                    buf.popleft()
                except IndexError:  # the writer emptied it meanwhile: nothing was evicted
                    pass
                else:
                    next(self._evicted)
            buf.append(item)
            if depth >= self._wake_at and not self._wake_requested:
                self._wake_requested = True
                self._wake.set()
        except Exception:  # the hot path must never raise into the app
            pass

    def _request_wake(self) -> None:
        """Wake the writer for a full batch (at most one pending request at a time)."""
        if not self._wake_requested:
            self._wake_requested = True
            self._wake.set()

    def hot_path(self) -> tuple[deque[T], int, int, Callable[[], None], Callable[[T], None]]:
        """What an emitter needs to queue without a method call on the common path.

        Returns ``(buffer, capacity, wake_at, request_wake, enqueue)``: append to ``buffer``
        while ``len(buffer) < capacity``, call ``request_wake()`` when the length before the
        append equals ``wake_at``, and hand the event to ``enqueue`` otherwise (full queue:
        the drop policy and its counting live there). All five stay valid across fork.
        """
        return self._buf, self._capacity, self._wake_at, self._request_wake, self.enqueue

    # ------------------------------------------------------------------ public API
    @property
    def queue_capacity(self) -> int:
        return self._capacity

    @property
    def queue_depth(self) -> int:
        return len(self._buf)

    @property
    def enqueued(self) -> int:
        return self.health().enqueued

    @property
    def exported(self) -> int:
        return self._exported

    @property
    def dropped(self) -> Mapping[str, int]:
        return self.health().dropped

    @property
    def export_errors(self) -> int:
        return sum(slot.errors for slot in self._slots)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def enabled(self) -> bool:
        """False when built disabled (``enabled=False`` or ``PROFILIS_ENABLED=false``)."""
        return self._enabled

    # The Profilis 1.x counters: read-only, each warns once per call site.
    @property
    def processed(self) -> int:
        warn_deprecated("AsyncCollector.processed", "AsyncCollector.exported")
        return self._exported

    @property
    def dropped_oldest(self) -> int:
        warn_deprecated(
            "AsyncCollector.dropped_oldest", "AsyncCollector.dropped['queue'] (any full queue)"
        )
        return self.health().dropped["queue"]

    @property
    def flush_errors(self) -> int:
        warn_deprecated("AsyncCollector.flush_errors", "AsyncCollector.export_errors")
        return self.export_errors

    def health(self) -> CollectorHealth:
        """Return all counters at once."""
        depth = len(self._buf)
        popped = self._popped
        evicted = _count_value(self._evicted)
        rejected = _count_value(self._rejected)
        settled = self._exported + self._dropped_export + self._dropped_processor
        dropped = {
            "queue": evicted + rejected,
            "processor": self._dropped_processor,
            "export": self._dropped_export,
        }
        if not self._enabled:
            dropped["queue"], dropped["disabled"] = 0, rejected
        return CollectorHealth(
            enqueued=popped + evicted + rejected + depth,
            exported=self._exported,
            dropped=dropped,
            filtered=self._filtered,
            export_errors=sum(slot.errors for slot in self._slots),
            queue_depth=depth,
            queue_capacity=self._capacity,
            in_flight=max(0, popped - settled - self._filtered),
            sinks=tuple(slot.health() for slot in self._slots),
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event enqueued before this call is settled; False on timeout."""
        writer = self._writer
        if writer is None:  # disabled: nothing is ever queued
            return True
        deadline = time.monotonic() + timeout
        target = self.health().enqueued
        with self._progress:
            self._wake.set()
            while not self._flushed(target):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not writer.is_alive():
                    return self._flushed(target)
                self._progress.wait(min(remaining, self._flush_interval))
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Drain, close the sinks and stop the writer, within ``timeout`` seconds. Idempotent.

        Events enqueued after close stay queued (and counted in ``queue_depth``).
        """
        if self._closed:
            return
        budget = self._close_timeout_s if timeout is None else max(0.0, timeout)
        # The deadline must be in place before the writer can observe ``_closed``.
        self._deadline = time.monotonic() + budget
        self._closed = True
        _live.discard(self)
        writer = self._writer
        if writer is None:  # disabled: the sinks are still ours to close
            self._close_sinks()
            return
        self._wake.set()
        if threading.current_thread() is not writer:
            writer.join(budget)

    def __enter__(self) -> AsyncCollector[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writer thread
    def _reset_state(self) -> None:
        """Fresh counters, events and locks: at start and in a forked child."""
        self._evicted = itertools.count()
        self._rejected = itertools.count()
        self._popped = 0
        self._exported = 0
        self._filtered = 0
        self._dropped_processor = 0
        self._dropped_export = 0
        self._wake = threading.Event()
        self._wake_requested = False
        self._progress = threading.Condition(threading.Lock())
        self._deadline = 0.0
        self._last_drop_log = time.monotonic()
        self._logged_drops = 0
        for slot in self._slots:
            slot.reset()

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._writer.start()

    def _after_fork_in_child(self) -> None:
        # The parent still owns and exports what was queued at fork time; the child starts
        # empty with its own counters, locks (a lock held by the parent's writer would stay
        # held forever here) and writer.
        self._buf.clear()
        self._reset_state()
        if not self._closed and self._enabled:
            self._start_writer()

    def _flushed(self, target: int) -> bool:
        health = self.health()
        return health.enqueued - health.queue_depth >= target and health.in_flight == 0

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait(self._sleep_s())
            wake.clear()
            self._wake_requested = False
            try:
                self._drain(limit=self._capacity)
                now = time.monotonic()
                for slot in self._slots:
                    slot.retry(now)
                self._log_drops(now)
            except Exception:  # a bug here must not kill the writer: log and go on
                log.exception("profilis: collector %s writer error", self.name)
            with self._progress:
                self._progress.notify_all()
            if self._closed:
                self._shutdown()
                return

    def _sleep_s(self) -> float:
        pause = self._flush_interval
        for slot in self._slots:
            if slot.has_pending:
                pause = min(pause, max(0.001, slot.next_attempt - time.monotonic()))
        return pause

    def _drain(self, limit: float) -> None:
        buf = self._buf
        popleft = buf.popleft
        batch_max = self._batch_max
        taken = 0
        while buf and taken < limit:
            count = min(batch_max, len(buf))
            batch = [popleft() for _ in range(count)]
            self._popped += count
            taken += count
            self._process(batch)

    def _process(self, batch: list[T]) -> None:
        size = len(batch)
        for processor in self._processors:
            try:
                batch = processor(batch)
            except Exception:
                # Passing the batch on unprocessed could leak what a redaction step should
                # have removed, so a failing processor drops it (counted).
                self._dropped_processor += size
                log.debug("profilis: processor %r failed", processor, exc_info=True)
                return
        self._filtered += size - len(batch)
        if not batch:
            return
        delivery = Delivery(batch, len(self._slots))
        for slot in self._slots:
            slot.offer(delivery)

    def _settle(self, delivery: Delivery[T], delivered: bool) -> None:
        if not delivered:
            delivery.failed = True
        delivery.remaining -= 1
        if delivery.remaining == 0:
            if delivery.failed:
                self._dropped_export += len(delivery.batch)
            else:
                self._exported += len(delivery.batch)

    def _shutdown(self) -> None:
        deadline = self._deadline
        while self._buf and time.monotonic() < deadline:
            self._drain(limit=self._batch_max)
        for slot in self._slots:
            if time.monotonic() < deadline:
                slot.retry(time.monotonic(), force=True)
            slot.give_up()
        self._close_sinks()
        self._log_drops(time.monotonic(), force=True)
        with self._progress:
            self._progress.notify_all()

    def _close_sinks(self) -> None:
        for slot in self._slots:
            # ``finalize``: the 1.x hook, for a sink written for 1.x that has no ``close``.
            close = getattr(slot.sink, "close", None) or getattr(slot.sink, "finalize", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.warning("profilis: closing sink %s failed", slot.name, exc_info=True)

    def _log_drops(self, now: float, *, force: bool = False) -> None:
        if not force and now - self._last_drop_log < DROP_LOG_INTERVAL_S:
            return
        health = self.health()
        total = health.dropped_total
        if total > self._logged_drops:
            log.warning(
                "profilis: collector %s dropped %d events since the last report (total %s)",
                self.name,
                total - self._logged_drops,
                dict(health.dropped),
            )
            self._logged_drops = total
        self._last_drop_log = now


def _count_value(counter: itertools.count[int]) -> int:
    """Read an ``itertools.count`` without advancing it (its repr is ``count(N)``)."""
    return int(repr(counter)[6:-1])


# Every live collector, for the fork and exit hooks (weak: collectors may be dropped freely).
_live: weakref.WeakSet[AsyncCollector[Any]] = weakref.WeakSet()


def _reinit_collectors_in_child() -> None:
    for collector in list(_live):
        collector._after_fork_in_child()


def _close_collectors_at_exit() -> None:
    for collector in list(_live):
        try:
            collector.close()
        except Exception:
            log.debug("profilis: close at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_collectors_in_child)
atexit.register(_close_collectors_at_exit)
