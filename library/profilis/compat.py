"""Profilis 1.x event shapes for sinks written against 1.x: the ``v1_events`` processor.

``AsyncCollector(sink, v1_events=True)`` runs it after every other processor, so each of the
collector's sinks gets events as Profilis 1.0 emitted them; it can also be listed in
``processors=`` by hand. Without it nothing here runs but the collector's one notice, at
construction, to a plain-function sink that may have been written for 1.x. The reverse
direction, reading v1 events as v2, is ``profilis.schema.upgrade_event``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["to_v1_event", "v1_events"]

_log = logging.getLogger("profilis.collector")


def v1_events(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A processor: the batch with every event in its Profilis 1.0 shape (``to_v1_event``)."""
    return [to_v1_event(event) for event in batch]


def to_v1_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` as Profilis 1.0's emitter built it: a new dict, the input left as it was.

    - HTTP becomes ``REQ`` with ``route``, ``status``, ``dur_ns`` (1.0 had no method,
      error or sizes on a request event);
    - FN keeps ``fn`` and ``dur_ns``, and ``error`` is a bool again;
    - DB keeps ``query``, ``dur_ns`` and ``db_vendor`` (when known); ``rows`` is ``-1`` when
      unknown, as 1.0's SQLAlchemy instrumentation reported it.

    Every one starts with ``ts_ns``, ``trace_id``, ``span_id`` (``None`` outside a span) and
    ``kind``, in 1.0's order. ``ts_ns`` keeps its 2.0 meaning, the wall-clock start (1.0 took
    a monotonic reading), so it can be compared across processes. Other kinds pass unchanged.
    """
    kind = event.get("kind")
    if kind == "HTTP" or kind == "REQ":
        v1 = _head(event, "REQ")
        v1["route"] = event.get("route")
        v1["status"] = event.get("status")
        v1["dur_ns"] = event.get("dur_ns")
    elif kind == "FN":
        v1 = _head(event, "FN")
        v1["fn"] = event.get("fn")
        v1["dur_ns"] = event.get("dur_ns")
        # 2.0 names the exception type; 1.0 only said whether there was one.
        v1["error"] = bool(event.get("error"))
    elif kind == "DB":
        v1 = _head(event, "DB")
        v1["query"] = event.get("query")
        v1["dur_ns"] = event.get("dur_ns")
        rows = event.get("rows")
        v1["rows"] = rows if type(rows) is int else -1
        vendor = event.get("db_vendor")
        if vendor is not None:
            v1["db_vendor"] = vendor
    else:
        return dict(event)
    return v1


def _head(event: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {
        "ts_ns": event.get("ts_ns"),
        "trace_id": event.get("trace_id"),
        "span_id": event.get("span_id"),
        "kind": kind,
    }


def notice_plain_function_sinks(collector: str, sinks: Sequence[object]) -> None:
    """Say once, at construction, what a 1.x sink function would otherwise never learn.

    A 1.x sink that keeps ``kind == "REQ"`` events sees nothing in 2.0 and raises nothing:
    the dashboard it feeds stays empty without a word. Profilis' own sinks are classes, so
    only a plain ``def`` or lambda, the 1.x quickstarts' sink, gets this notice.
    """
    functions = [s for s in sinks if inspect.isfunction(s)]
    if functions:
        _log.warning(
            'profilis: collector %s: sink %s gets Profilis 2 events (kind "HTTP" where 1.x '
            'had "REQ", error as the exception type name); if it was written for Profilis '
            "1.x, pass v1_events=True to give it 1.x events, else v1_events=False to say it "
            "reads 2.0 events and silence this notice (see docs/migration.md)",
            collector,
            ", ".join(getattr(s, "__qualname__", "?") for s in functions),
        )
