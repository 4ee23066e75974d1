"""Emitter: builds the small event dicts of ``profilis.schema`` and queues them.

This is the hot path: read the clock, read the span context (one ContextVar get), build a
dict, append it to the collector's deque. No I/O, no locks, no formatting, and it never
raises into the caller. The append is written out in each emit (see ``AsyncCollector.
hot_path``) because a second Python call would cost as much as the rest of the emit.
"""

from __future__ import annotations

from typing import Any

from profilis.core.async_collector import AsyncCollector
from profilis.runtime.clock import wall_ns
from profilis.runtime.context import UNSAMPLED, RawContext, get_current

__all__ = ["Emitter"]


class Emitter:
    """Emits HTTP, FN and DB events into an ``AsyncCollector``.

    ``ts_ns`` is the wall-clock start of the operation (now minus ``dur_ns``); trace ids are
    taken from the current span (``profilis.runtime.use_span``) when there is one. FN and DB
    events caused by a request that is not recorded (sampled out or excluded) are skipped.
    """

    __slots__ = ("_buf", "_capacity", "_enqueue", "_wake", "_wake_at", "collector")

    def __init__(self, collector: AsyncCollector[dict[str, Any]]) -> None:
        self.collector = collector
        self._buf, self._capacity, self._wake_at, self._wake, self._enqueue = collector.hot_path()

    def emit_http(
        self,
        route: str,
        status: int,
        dur_ns: int,
        method: str = "GET",
        error: str | None = None,
        bytes_in: int | None = None,
        bytes_out: int | None = None,
        context: RawContext | None = None,
    ) -> None:
        """One served request: route template (never the raw path), status, duration.

        ``context`` is the request's span (the web adapters hold it already); left out, the
        current span is used.
        """
        try:
            ctx = get_current() if context is None else context
            if ctx is not None and ctx is not UNSAMPLED:
                # The adapters' case: one literal, no key added afterwards.
                event = {
                    "kind": "HTTP",
                    "ts_ns": wall_ns() - dur_ns,
                    "dur_ns": dur_ns,
                    "method": method,
                    "route": route,
                    "status": status,
                    "trace_id": ctx[0],
                    "span_id": ctx[1],
                }
                if ctx[2] is not None:
                    event["parent_span_id"] = ctx[2]
            else:
                event = {
                    "kind": "HTTP",
                    "ts_ns": wall_ns() - dur_ns,
                    "dur_ns": dur_ns,
                    "method": method,
                    "route": route,
                    "status": status,
                }
            if error is not None:
                event["error"] = error
            if bytes_in is not None:
                event["bytes_in"] = bytes_in
            if bytes_out is not None:
                event["bytes_out"] = bytes_out
            buf = self._buf
            depth = len(buf)
            if depth < self._capacity:
                buf.append(event)
                if depth == self._wake_at:
                    self._wake()
            else:
                self._enqueue(event)
        except Exception:  # instrumentation must never break the app
            pass

    #: The Profilis 1.x name: ``emit_req(route, status, dur_ns)``.
    emit_req = emit_http

    def emit_fn(self, fn: str, dur_ns: int, error: str | bool | None = None) -> None:
        """One function call: qualified name, duration, exception type name if it raised.

        Profilis 1.x passed ``error`` as a bool: ``False`` records no error, ``True`` an
        error of unknown type (``"Exception"``).
        """
        try:
            ctx = get_current()
            if ctx is UNSAMPLED:  # the request's sampling decision covers what it causes
                return
            event = {"kind": "FN", "ts_ns": wall_ns() - dur_ns, "dur_ns": dur_ns, "fn": fn}
            if ctx is not None:
                event["trace_id"] = ctx[0]
                event["span_id"] = ctx[1]
                if ctx[2] is not None:
                    event["parent_span_id"] = ctx[2]
            if error:
                event["error"] = error if error.__class__ is str else "Exception"
            buf = self._buf
            depth = len(buf)
            if depth < self._capacity:
                buf.append(event)
                if depth == self._wake_at:
                    self._wake()
            else:
                self._enqueue(event)
        except Exception:
            pass

    def emit_db(
        self,
        query: str,
        dur_ns: int,
        rows: int | None = None,
        db_vendor: str | None = None,
        error: str | None = None,
    ) -> None:
        """One database statement: normalised query (literals already redacted), vendor."""
        try:
            ctx = get_current()
            if ctx is UNSAMPLED:
                return
            event = {"kind": "DB", "ts_ns": wall_ns() - dur_ns, "dur_ns": dur_ns, "query": query}
            if ctx is not None:
                event["trace_id"] = ctx[0]
                event["span_id"] = ctx[1]
                if ctx[2] is not None:
                    event["parent_span_id"] = ctx[2]
            if db_vendor is not None:
                event["db_vendor"] = db_vendor
            if rows is not None:
                event["rows"] = rows
            if error is not None:
                event["error"] = error
            buf = self._buf
            depth = len(buf)
            if depth < self._capacity:
                buf.append(event)
                if depth == self._wake_at:
                    self._wake()
            else:
                self._enqueue(event)
        except Exception:
            pass
