"""MongoDB instrumentation: a PyMongo command listener emitting one DB event per command.

``ProfilisCommandListener`` is given to the client (``MongoClient(..., event_listeners=[l])``;
``AsyncMongoClient`` and Motor take the same). PyMongo calls it in the thread or task that
runs the command, so events join the current request's trace. A command becomes a query
that says what it does without the data it carries: ``find shop.users {"age": {"$gt": ?}}``
(keys and operators kept, every value ``?``, an array shown by its first item). The duration
is the one PyMongo measured; ``rows`` is the ``n`` of a write or the first batch of a read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from profilis._db import check_preview_len
from profilis._validation import check_bool
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError

__all__ = ["MongoConfig", "ProfilisCommandListener", "describe_command"]

#: Where each command keeps the document that selects what it touches.
_SELECTORS: Final = {
    "find": "filter",
    "count": "query",
    "distinct": "query",
    "findAndModify": "query",
    "aggregate": "pipeline",
    "delete": "deletes",
    "update": "updates",
}
#: Inside ``deletes``/``updates`` statements, the selector is ``q``.
_STATEMENT_SELECTOR: Final = "q"
_SHAPE_DEPTH_MAX: Final = 8
#: Commands in flight, between their start and their end; more means ends were lost.
_IN_FLIGHT_MAX: Final = 10_000
_VENDOR_MAX: Final = 64


class MongoConfig:
    """How commands are recorded: ``vendor_label`` is the events' ``db_vendor``,
    ``preview_len`` the most characters of a query, ``redact_collection`` hides collection
    names too (``find shop.?``)."""

    def __init__(
        self,
        *,
        vendor_label: str = "mongodb",
        preview_len: int = 160,
        redact_collection: bool = False,
    ) -> None:
        if not isinstance(vendor_label, str) or not 0 < len(vendor_label) <= _VENDOR_MAX:
            accepted = f"a non-empty string of at most {_VENDOR_MAX} characters"
            raise ConfigError("vendor_label", accepted, vendor_label)
        self.vendor_label = vendor_label
        self.preview_len = check_preview_len(preview_len)
        self.redact_collection = check_bool("redact_collection", redact_collection)


class ProfilisCommandListener(CommandListener):
    """Emits a DB event for every command a PyMongo client runs.

    ``MongoClient(uri, event_listeners=[ProfilisCommandListener(emitter)])``. The listener
    never raises into PyMongo.
    """

    def __init__(self, emitter: Emitter, config: MongoConfig | None = None) -> None:
        if not isinstance(emitter, Emitter):
            raise TypeError(f"emitter must be a profilis Emitter, got {type(emitter).__name__}")
        self._cfg = config or MongoConfig()
        self._emit_db = emitter.emit_db
        # (connection, request id) -> the query of a started command. The reply does not
        # repeat the command, so what it did is noted at the start.
        self._queries: dict[tuple[object, int], str] = {}

    def started(self, event: CommandStartedEvent) -> None:
        try:
            if len(self._queries) >= _IN_FLIGHT_MAX:
                self._queries.clear()
            cfg = self._cfg
            self._queries[(event.connection_id, event.request_id)] = describe_command(
                event.command_name,
                event.database_name,
                event.command,
                max_length=cfg.preview_len,
                redact_collection=cfg.redact_collection,
            )
        except Exception:  # never into PyMongo
            pass

    def succeeded(self, event: CommandSucceededEvent) -> None:
        try:
            query = self._queries.pop((event.connection_id, event.request_id), None)
            self._emit_db(
                query or f"{event.command_name} {event.database_name}",
                event.duration_micros * 1000,
                _rows(event.reply),
                self._cfg.vendor_label,
                None,
            )
        except Exception:
            pass

    def failed(self, event: CommandFailedEvent) -> None:
        try:
            query = self._queries.pop((event.connection_id, event.request_id), None)
            self._emit_db(
                query or f"{event.command_name} {event.database_name}",
                event.duration_micros * 1000,
                None,
                self._cfg.vendor_label,
                _error_name(event.failure),
            )
        except Exception:
            pass


def describe_command(
    command_name: str,
    database_name: str,
    command: Mapping[str, Any],
    *,
    max_length: int = 160,
    redact_collection: bool = False,
) -> str:
    """``find shop.users {"age": {"$gt": ?}}``: a command as a DB event's query shows it."""
    target = command.get(command_name)
    collection = target if isinstance(target, str) else ""
    if redact_collection and collection:
        collection = "?"
    if collection:
        text = f"{command_name} {database_name}.{collection}"
    else:  # a database command (ping, listCollections...), or an aggregate over a database
        text = f"{command_name} {database_name}".rstrip()
    key = _SELECTORS.get(command_name)
    if key is not None:
        selector = command.get(key)
        if key in ("deletes", "updates"):
            first = selector[0] if isinstance(selector, list) and selector else None
            selector = first.get(_STATEMENT_SELECTOR) if isinstance(first, Mapping) else None
        if selector is not None:
            text = f"{text} {_shape(selector, 0)}"
    if len(text) > max_length:
        text = text[: max_length - 3] + "..."
    return text


def _shape(value: object, depth: int) -> str:
    """``value`` with its keys kept and every value ``?``; an array shows its first item."""
    if depth >= _SHAPE_DEPTH_MAX:
        return "?"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{json.dumps(str(key))}: {_shape(item, depth + 1)}" for key, item in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + (_shape(value[0], depth + 1) if value else "") + "]"
    return "?"


def _rows(reply: Mapping[str, Any]) -> int | None:
    count = reply.get("n")
    if type(count) is int and count >= 0:
        return count
    cursor = reply.get("cursor")
    if isinstance(cursor, Mapping):
        batch = cursor.get("firstBatch")
        if isinstance(batch, list):
            return len(batch)
    return None


def _error_name(failure: Mapping[str, Any]) -> str:
    """The error's name: PyMongo's exception type for client-side failures (``errtype``),
    else the server's ``codeName`` (``DuplicateKey``)."""
    for key in ("errtype", "codeName"):
        name = failure.get(key)
        if isinstance(name, str) and name:
            return name
    return "OperationFailure"
