"""StatsStore: a sink keeping a rolling window of request, function and DB statistics.

It feeds the built-in dashboard (``profilis.ui``): ``AsyncCollector([..., stats])`` in a
process, or the sidecar for a whole pod. ``snapshot()`` returns the JSON-ready document
served as ``metrics.json`` (its shape is in docs/ui.md; ``_stats_report`` writes it).
Memory is bounded by the key caps times the time slots, whatever the traffic; latency
percentiles come from the fixed log-spaced histograms of ``_histogram``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

from profilis._compat import deprecated_getattr, warn_deprecated
from profilis._validation import check_float, check_int
from profilis.core._histogram import Histogram, bucket_of
from profilis.core._stats_keys import KeyCap
from profilis.core._stats_report import (
    OVERFLOW,
    ErrorRecord,
    RouteHistogram,
    WindowCopy,
    build_report,
    health_document,
)
from profilis.core.async_collector import CollectorHealth
from profilis.schema import is_valid_trace_id

__all__ = ["OVERFLOW", "V1_RECORD_ROUTE", "HealthReporter", "HealthSource", "StatsStore"]

log = logging.getLogger("profilis.stats")

K = TypeVar("K", bound=Hashable)
H = TypeVar("H", bound=Histogram)

#: Events handled per lock hold: a reader (the dashboard) never waits for a whole batch.
_CHUNK: Final = 256
#: Longer names are cut: a key must not hold megabytes, however the app names its routes.
_NAME_CHARS: Final = 512
_QUERY_CHARS: Final = 2048
#: Distinct exception types kept per window (the rest are counted under OVERFLOW).
_MAX_ERROR_TYPES: Final = 64
#: Distinct DB vendors kept per window.
_MAX_VENDORS: Final = 16
#: The route of requests counted by the 1.x ``record()``, which named none.
V1_RECORD_ROUTE: Final = "<StatsStore.record>"


class HealthReporter(Protocol):
    """Anything with ``health()``, like ``AsyncCollector``."""

    def health(self) -> CollectorHealth: ...


#: A callable returning collector health: a ``CollectorHealth`` or a JSON-ready mapping
#: (the sidecar reports the sum over its workers this way).
HealthSource = Callable[[], "CollectorHealth | Mapping[str, object]"]


class _Slot:
    """Everything recorded in one ``bucket_seconds`` of the window."""

    __slots__ = ("epoch", "error_types", "functions", "queries", "routes", "vendors")

    def __init__(self) -> None:
        self.reset(-1)

    def reset(self, epoch: int) -> None:
        self.epoch = epoch
        self.routes: dict[tuple[str, str], RouteHistogram] = {}
        self.functions: dict[str, Histogram] = {}
        self.vendors: dict[str, Histogram] = {}
        self.queries: dict[tuple[str, str], Histogram] = {}
        self.error_types: dict[str, int] = {}


class StatsStore:
    """A sink summarising the last ``window_minutes`` of events for the dashboard.

    Per route (method and template): count, error rate, p50/p95/p99 latency, status classes;
    per function and per DB vendor and normalised query the same; recent errors (the last
    ``max_errors``, with their exception types); request rate and latency over time, at
    ``series_seconds`` resolution. The window moves in steps of ``bucket_seconds``.

    At most ``max_routes`` routes, ``max_functions`` functions and ``max_queries`` queries
    have rows of their own within the window; the rest are counted in one ``<other>`` row,
    so memory stays bounded under any traffic. Events are placed by their own timestamps
    (the end of the operation) against ``clock``, the wall clock in seconds. Thread-safe:
    the collector's writer thread feeds it while servers read ``snapshot()``.
    """

    def __init__(
        self,
        window_minutes: float = 15,
        max_errors: int = 100,
        *,
        max_routes: int = 200,
        max_functions: int = 200,
        max_queries: int = 100,
        bucket_seconds: float = 60.0,
        series_seconds: float = 5.0,
        collector: HealthReporter | HealthSource | None = None,
        clock: Callable[[], float] = time.time,
        window_sec: float | None = None,
    ) -> None:
        if window_sec is not None:  # 1.x's only argument
            warn_deprecated("StatsStore(window_sec=)", "window_minutes=")
            window_minutes = (
                check_float(
                    "window_sec", window_sec, minimum=0.0, maximum=86400.0, min_inclusive=False
                )
                / 60.0
            )
        window_s = (
            check_float(
                "window_minutes", window_minutes, minimum=0.0, maximum=1440.0, min_inclusive=False
            )
            * 60.0
        )
        bucket_s = check_float("bucket_seconds", bucket_seconds, minimum=1.0, maximum=window_s)
        series_s = check_float("series_seconds", series_seconds, minimum=1.0, maximum=bucket_s)
        self.window_seconds = window_s
        self.bucket_seconds = bucket_s
        self.series_seconds = series_s
        self.max_errors = check_int("max_errors", max_errors, minimum=0, maximum=100_000)
        self.max_routes = check_int("max_routes", max_routes, minimum=1, maximum=100_000)
        self.max_functions = check_int("max_functions", max_functions, minimum=1, maximum=100_000)
        self.max_queries = check_int("max_queries", max_queries, minimum=1, maximum=100_000)
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds since the epoch")
        self._clock = clock
        self._bucket_ns = round(bucket_s * 1e9)
        self._series_ns = round(series_s * 1e9)
        # The current (partial) slot plus enough whole ones to cover the window.
        self._nslots = math.ceil(window_s / bucket_s) + 1
        self._npoints = math.ceil(window_s / series_s)
        self._health: HealthSource | None = None
        self._reset()
        _live.add(self)
        if collector is not None:
            self.attach(collector)

    def _reset(self) -> None:
        """An empty window: at start, and in a forked child (whose parent keeps its own)."""
        self._slots = [_Slot() for _ in range(self._nslots)]
        self._point_epochs = [-1] * self._npoints
        self._points = [Histogram() for _ in range(self._npoints)]
        self._route_keys: KeyCap[tuple[str, str]] = KeyCap(self.max_routes, ("*", OVERFLOW))
        self._function_keys: KeyCap[str] = KeyCap(self.max_functions, OVERFLOW)
        self._vendor_keys: KeyCap[str] = KeyCap(_MAX_VENDORS, OVERFLOW)
        self._query_keys: KeyCap[tuple[str, str]] = KeyCap(self.max_queries, ("*", OVERFLOW))
        self._error_keys: KeyCap[str] = KeyCap(_MAX_ERROR_TYPES, OVERFLOW)
        self._recent: deque[ErrorRecord] = deque(maxlen=self.max_errors)
        self._epoch = -1
        self._oldest = -self._nslots  # the first event's _roll sets both
        self._events = 0
        self._ignored = 0
        self._late = 0
        self._started_ns = self._now_ns()
        # Held per chunk of events by the writer and for a copy by readers: never for I/O.
        # New after fork too: a lock held by the parent's writer would stay held here.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ feeding
    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """The sink: record a batch. Malformed events are counted and skipped, never raised
        (a raising sink would make the collector retry the batch)."""
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            now_ns = self._now_ns()
            with self._lock:
                self._roll(now_ns)
                skipped = self._ignored + self._late
                for event in chunk:
                    try:
                        self._add(event, now_ns)
                    except Exception:
                        self._ignored += 1
                # Once per chunk, not per event: the writer thread's time is the budget.
                self._events += len(chunk) - (self._ignored + self._late - skipped)

    def attach(self, source: HealthReporter | HealthSource) -> None:
        """Report collector health from ``source``: an ``AsyncCollector`` (or anything with
        ``health()``) or a callable returning ``CollectorHealth`` or a mapping."""
        health = getattr(source, "health", None)
        if callable(health):
            self._health = health
        elif callable(source):
            self._health = source
        else:
            raise TypeError("source must have a health() method or be a callable")

    def _now_ns(self) -> int:
        return int(self._clock() * 1e9)

    def _roll(self, now_ns: int) -> None:
        """Move the window to ``now_ns``: keys whose last slot left the window free their row."""
        epoch = now_ns // self._bucket_ns
        if epoch <= self._epoch:
            return
        self._epoch = epoch
        self._oldest = oldest = epoch - self._nslots + 1
        for keys in (
            self._route_keys,
            self._function_keys,
            self._vendor_keys,
            self._query_keys,
            self._error_keys,
        ):
            keys.expire(oldest)

    def _slot(self, epoch: int) -> _Slot:
        slot = self._slots[epoch % self._nslots]
        if slot.epoch != epoch:  # it held a slot that has left the window
            slot.reset(epoch)
        return slot

    def _add(self, event: Mapping[str, Any], now_ns: int) -> None:
        dur_ns: int = event["dur_ns"]
        if dur_ns < 0:
            raise ValueError("negative duration")
        start_ns = event.get("ts_ns")
        end_ns = now_ns if start_ns is None else start_ns + dur_ns
        epoch = end_ns // self._bucket_ns
        if epoch > self._epoch:  # a clock ahead of ours: count it as now
            epoch, end_ns = self._epoch, now_ns
        elif epoch < self._oldest:
            self._late += 1
            return
        slot = self._slot(epoch)
        index = bucket_of(dur_ns)
        kind = event["kind"]
        raw_error: str | bool | None = event.get("error")
        # A 1.x event (v1_events=True) only says whether it failed.
        error = ("Exception" if raw_error else None) if type(raw_error) is bool else raw_error
        if kind == "HTTP" or kind == "REQ":
            status = event.get("status", 0)
            # A 5xx without an exception is still a failure; a 4xx is the client's.
            failed = error is not None or status >= 500
            key = (event.get("method", "_OTHER"), event["route"][:_NAME_CHARS])
            route = _record(slot.routes, self._route_keys, key, epoch, RouteHistogram)
            route.add(index, dur_ns, failed)
            if 100 <= status < 600:
                route.statuses[status // 100 - 1] += 1
            self._add_point(end_ns, index, dur_ns, failed)
            if failed:
                name = f"{key[0]} {key[1]}"
                self._add_error(slot, epoch, end_ns, "HTTP", name, error or f"HTTP {status}", event)
        elif kind == "FN":
            fn = event["fn"][:_NAME_CHARS]
            failed = error is not None
            functions = slot.functions
            _record(functions, self._function_keys, fn, epoch, Histogram).add(index, dur_ns, failed)
            if error is not None:
                self._add_error(slot, epoch, end_ns, "FN", fn, error, event)
        elif kind == "DB":
            vendor = event.get("db_vendor") or "unknown"
            query = (vendor, event["query"][:_QUERY_CHARS])
            failed = error is not None
            _record(slot.vendors, self._vendor_keys, vendor, epoch, Histogram).add(
                index, dur_ns, failed
            )
            _record(slot.queries, self._query_keys, query, epoch, Histogram).add(
                index, dur_ns, failed
            )
            if error is not None:
                self._add_error(slot, epoch, end_ns, "DB", query[1], error, event)
        else:
            raise ValueError(f"unknown kind {kind!r}")

    def _add_point(self, end_ns: int, index: int, dur_ns: int, failed: bool) -> None:
        epoch = end_ns // self._series_ns
        position = epoch % self._npoints
        if self._point_epochs[position] != epoch:
            if self._point_epochs[position] > epoch:  # older than the chart reaches back
                return
            self._point_epochs[position] = epoch
            self._points[position] = Histogram()
        self._points[position].add(index, dur_ns, failed)

    def _add_error(
        self,
        slot: _Slot,
        epoch: int,
        end_ns: int,
        kind: str,
        name: str,
        error: str,
        event: Mapping[str, Any],
    ) -> None:
        error = str(error)[:_NAME_CHARS]
        error_type = self._error_keys.admit(error, epoch)
        slot.error_types[error_type] = slot.error_types.get(error_type, 0) + 1
        # Only well-formed extras are kept: in the sidecar the event came off the network.
        status = event.get("status")
        trace_id = event.get("trace_id")
        self._recent.append(
            ErrorRecord(
                end_ns,
                kind,
                name,
                error,
                event["dur_ns"],
                status if type(status) is int else None,
                trace_id if is_valid_trace_id(trace_id) else None,
            )
        )

    def record(self, dur_ns: int, error: bool = False) -> None:
        """Profilis 1.x: count one request of ``dur_ns`` (deprecated: pass the store to the
        collector as a sink and it records every event, with its route). 1.x knew no
        route, so these requests share the route ``V1_RECORD_ROUTE``; ``error`` is a 500."""
        warn_deprecated("StatsStore.record()", "the StatsStore as a collector sink")
        self(
            [
                {
                    "kind": "HTTP",
                    "method": "_OTHER",
                    "route": V1_RECORD_ROUTE,
                    "status": 500 if error else 200,
                    "dur_ns": int(dur_ns),
                }
            ]
        )

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> dict[str, Any]:
        """The ``metrics.json`` document: JSON-ready, described in docs/ui.md."""
        now_ns = self._now_ns()
        health = self._read_health()  # outside the lock: the collector has its own
        with self._lock:
            self._roll(now_ns)
            oldest = self._epoch - self._nslots + 1
            slots = [slot for slot in self._slots if slot.epoch >= oldest]
            oldest_point = now_ns // self._series_ns - self._npoints + 1
            # Copies only, under the lock; merging and percentiles happen after it.
            window = WindowCopy(
                routes=[{k: h.copy() for k, h in s.routes.items()} for s in slots],
                functions=[{k: h.copy() for k, h in s.functions.items()} for s in slots],
                vendors=[{k: h.copy() for k, h in s.vendors.items()} for s in slots],
                queries=[{k: h.copy() for k, h in s.queries.items()} for s in slots],
                error_types=[dict(s.error_types) for s in slots],
                points=[
                    (epoch, self._points[i].copy())
                    for i, epoch in enumerate(self._point_epochs)
                    if epoch >= oldest_point
                ],
                recent_errors=list(self._recent),
                counters={
                    "events": self._events,
                    "ignored": self._ignored,
                    "late": self._late,
                },
                overflowed={
                    "routes": self._route_keys.overflowed,
                    "functions": self._function_keys.overflowed,
                    "db_vendors": self._vendor_keys.overflowed,
                    "queries": self._query_keys.overflowed,
                    "error_types": self._error_keys.overflowed,
                },
            )
        limits = {
            "max_routes": self.max_routes,
            "max_functions": self.max_functions,
            "max_queries": self.max_queries,
            "max_errors": self.max_errors,
            "max_error_types": _MAX_ERROR_TYPES,
            "max_db_vendors": _MAX_VENDORS,
        }
        # The window starts at the oldest slot still in it, or when the store started.
        window_start_ns = max(self._started_ns, oldest * self._bucket_ns)
        return build_report(
            window,
            now_ns=now_ns,
            window_start_ns=window_start_ns,
            window_seconds=self.window_seconds,
            bucket_seconds=self.bucket_seconds,
            series_seconds=self.series_seconds,
            series_points=self._npoints,
            limits=limits,
            health=health,
        )

    def _read_health(self) -> dict[str, Any] | None:
        source = self._health
        if source is None:
            return None
        try:
            return health_document(source())
        except Exception:  # the dashboard shows the rest; the failure is worth a debug line
            log.debug("profilis: reading collector health failed", exc_info=True)
            return {"error": "collector health unavailable"}


def _record(table: dict[K, H], keys: KeyCap[K], key: K, epoch: int, factory: Callable[[], H]) -> H:
    """The row of ``key`` in one slot's table, created (or redirected to OVERFLOW) if new."""
    record = table.get(key)
    if record is None:
        key = keys.admit(key, epoch)
        record = table.get(key)
        if record is None:
            record = table[key] = factory()
    return record


# Every live store, for the fork hook (weak: stores may be dropped freely).
_live: weakref.WeakSet[StatsStore] = weakref.WeakSet()


def _reset_stores_in_child() -> None:
    for store in list(_live):
        store._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_stores_in_child)

# Profilis 1.x constants of its StatsStore (deprecated).
__getattr__ = deprecated_getattr(
    __name__,
    {
        "PERCENT_MAX": (lambda: 100, "100 (error rates are fractions in snapshot())"),
        "SPARKLINE_BINS": (lambda: 60, "StatsStore(series_seconds=)"),
    },
)
