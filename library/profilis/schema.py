"""Event schema v2: the shape of the HTTP, FN and DB events that Profilis emits and ships.

Emitters build these dicts on the hot path without checks; ``upgrade_event`` is the check at
the trust boundary (the sidecar reading datagrams, a reader of old JSONL files) and also reads
v1 events. ``schema_version`` travels once per batch (wire envelope, file header), not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias, TypedDict, TypeGuard

from profilis.errors import SchemaError

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "DbEvent",
    "Event",
    "EventKind",
    "FnEvent",
    "HttpEvent",
    "is_valid_span_id",
    "is_valid_trace_id",
    "upgrade_event",
]

SCHEMA_VERSION: Final = "2"

EventKind: TypeAlias = Literal["HTTP", "FN", "DB"]
KINDS: Final[frozenset[str]] = frozenset({"HTTP", "FN", "DB"})


class _Timing(TypedDict):
    # Wall-clock time (time.time_ns) of the operation's START, so events from several
    # processes line up; the duration comes from a monotonic clock, so it is never negative.
    ts_ns: int
    dur_ns: int


class _Context(TypedDict, total=False):
    # Exception type name (e.g. "ValueError"); absent when the operation succeeded.
    error: str
    # W3C trace context: 32 and 16 lowercase hex digits, never all zeros.
    trace_id: str
    span_id: str
    parent_span_id: str


class _HttpRequired(_Timing):
    kind: Literal["HTTP"]
    method: str
    # The route template ("/orders/{id}"), never the raw path: it is a metric label.
    route: str
    status: int


class HttpEvent(_HttpRequired, _Context, total=False):
    """One served HTTP request."""

    bytes_in: int
    bytes_out: int


class _FnRequired(_Timing):
    kind: Literal["FN"]
    fn: str  # qualified name, e.g. "orders.service.checkout"


class FnEvent(_FnRequired, _Context, total=False):
    """One call of an instrumented function."""


class _DbRequired(_Timing):
    kind: Literal["DB"]
    query: str  # normalised, literals redacted


class DbEvent(_DbRequired, _Context, total=False):
    """One database statement."""

    db_vendor: str
    rows: int


Event: TypeAlias = HttpEvent | FnEvent | DbEvent

# Limits on untrusted input. Labels and log lines downstream must stay bounded, and a value
# over the limit is rejected rather than cut, so two different routes never merge into one.
_INT64_MAX: Final = 2**63 - 1  # exporters (OTLP fixed64, Prometheus) need 64-bit numbers
_METHOD_MAX: Final = 32
_NAME_MAX: Final = 1024  # route, fn
_QUERY_MAX: Final = 8192
_VENDOR_MAX: Final = 64
_ERROR_MAX: Final = 256

# OpenTelemetry's value for an HTTP method it does not know; v1 REQ events carried none.
_UNKNOWN_METHOD: Final = "_OTHER"
# v1 FN events said only error=True; the exception type was not recorded.
_V1_ERROR: Final = "Exception"

# A compiled fullmatch measured twice as fast as a set-of-characters check here.
_TRACE_ID: Final = re.compile("[0-9a-f]{32}")
_SPAN_ID: Final = re.compile("[0-9a-f]{16}")
_ZERO_TRACE_ID: Final = "0" * 32
_ZERO_SPAN_ID: Final = "0" * 16


def is_valid_trace_id(value: object) -> TypeGuard[str]:
    """True if ``value`` is a W3C trace id: 32 lowercase hex digits, not all zeros."""
    return type(value) is str and _TRACE_ID.fullmatch(value) is not None and value != _ZERO_TRACE_ID


def is_valid_span_id(value: object) -> TypeGuard[str]:
    """True if ``value`` is a W3C span id: 16 lowercase hex digits, not all zeros."""
    return type(value) is str and _SPAN_ID.fullmatch(value) is not None and value != _ZERO_SPAN_ID


def upgrade_event(raw: Mapping[str, object]) -> Event:
    """Check one untrusted event (v2, or v1 that can be upgraded) and return a clean copy.

    The result is a new dict holding only the schema's keys, each of the right type;
    unknown keys are left behind. Raises ``SchemaError`` naming the first offending field.

    v1 input is upgraded: kind ``"REQ"`` becomes ``"HTTP"`` (with method ``"_OTHER"``, the
    OpenTelemetry value for an unknown method, when the event has none), and a boolean
    ``error`` becomes ``"Exception"`` when true and is dropped when false. v1 ``"FN_META"``
    records describe functions rather than calls, so they are refused like any non-event.

    A malformed ``trace_id``/``span_id``/``parent_span_id`` is dropped, not an error: the
    ids only link the event to a trace, and losing the timing over them would lose more.
    """
    # Callers pass whatever the JSON held, which may not be the object the annotation says.
    candidate: object = raw
    if not isinstance(candidate, Mapping):
        raise SchemaError(f"an event must be an object, got {_show(candidate)}")
    kind = raw.get("kind")
    if kind == "HTTP" or kind == "REQ":
        return _http_event(raw)
    if kind == "FN":
        return _fn_event(raw)
    if kind == "DB":
        return _db_event(raw)
    if kind == "FN_META":
        raise SchemaError("kind 'FN_META' is v1 function metadata, not an event")
    raise _field_error(raw, "kind", "one of 'HTTP', 'FN', 'DB' (or v1 'REQ')")


def _http_event(raw: Mapping[str, object]) -> HttpEvent:
    method = raw.get("method")
    if method is None and raw.get("kind") == "REQ":
        method = _UNKNOWN_METHOD
    elif not (type(method) is str and 0 < len(method) <= _METHOD_MAX):
        raise _field_error(raw, "method", f"a non-empty string of at most {_METHOD_MAX} characters")
    event: HttpEvent = {
        "kind": "HTTP",
        "ts_ns": _int(raw, "ts_ns"),
        "dur_ns": _int(raw, "dur_ns"),
        "method": method,
        "route": _str(raw, "route", _NAME_MAX),
        "status": _int(raw, "status", 100, 599),
    }
    bytes_in = raw.get("bytes_in")
    if bytes_in is not None:
        event["bytes_in"] = _int(raw, "bytes_in")
    bytes_out = raw.get("bytes_out")
    if bytes_out is not None:
        event["bytes_out"] = _int(raw, "bytes_out")
    _copy_context(raw, event)
    return event


def _fn_event(raw: Mapping[str, object]) -> FnEvent:
    event: FnEvent = {
        "kind": "FN",
        "ts_ns": _int(raw, "ts_ns"),
        "dur_ns": _int(raw, "dur_ns"),
        "fn": _str(raw, "fn", _NAME_MAX),
    }
    _copy_context(raw, event)
    return event


def _db_event(raw: Mapping[str, object]) -> DbEvent:
    event: DbEvent = {
        "kind": "DB",
        "ts_ns": _int(raw, "ts_ns"),
        "dur_ns": _int(raw, "dur_ns"),
        "query": _str(raw, "query", _QUERY_MAX),
    }
    vendor = raw.get("db_vendor")
    if vendor is not None:
        if not (type(vendor) is str and 0 < len(vendor) <= _VENDOR_MAX):
            expected = f"a non-empty string of at most {_VENDOR_MAX} characters"
            raise _field_error(raw, "db_vendor", expected)
        event["db_vendor"] = vendor
    # v1 emitters passed cursor.rowcount through, which may be None when unknown.
    rows = raw.get("rows")
    if rows is not None:
        event["rows"] = _int(raw, "rows")
    _copy_context(raw, event)
    return event


def _copy_context(raw: Mapping[str, object], event: Event) -> None:
    """Copy ``error`` and the valid trace ids from ``raw`` into ``event``."""
    error = raw.get("error")
    if type(error) is str and 0 < len(error) <= _ERROR_MAX:
        event["error"] = error
    elif error is True:
        event["error"] = _V1_ERROR
    elif error is not None and error is not False:
        expected = f"an exception type name of at most {_ERROR_MAX} characters, or absent"
        raise _field_error(raw, "error", expected)
    trace_id = raw.get("trace_id")
    if is_valid_trace_id(trace_id):
        event["trace_id"] = trace_id
    span_id = raw.get("span_id")
    if is_valid_span_id(span_id):
        event["span_id"] = span_id
    parent_span_id = raw.get("parent_span_id")
    if is_valid_span_id(parent_span_id):
        event["parent_span_id"] = parent_span_id


def _int(raw: Mapping[str, object], field: str, minimum: int = 0, maximum: int = _INT64_MAX) -> int:
    value = raw.get(field)
    # Exact int: bool is an int subclass, and JSON decoding only ever yields exact ints.
    if type(value) is int and minimum <= value <= maximum:
        return value
    raise _field_error(raw, field, f"an integer in [{minimum}, {maximum}]")


def _str(raw: Mapping[str, object], field: str, max_length: int) -> str:
    value = raw.get(field)
    if type(value) is str and len(value) <= max_length:
        return value
    raise _field_error(raw, field, f"a string of at most {max_length} characters")


def _field_error(raw: Mapping[str, object], field: str, expected: str) -> SchemaError:
    if field not in raw:
        return SchemaError(f"{field} is missing: expected {expected}")
    return SchemaError(f"{field} must be {expected}, got {_show(raw[field])}")


def _show(value: object) -> str:
    """Describe an untrusted value briefly: it may be megabytes long, or nested deep."""
    if isinstance(value, str):
        if len(value) <= 40:
            return repr(value)
        return f"{value[:40]!r}... ({len(value)} characters)"
    if isinstance(value, int) and value.bit_length() > 64:
        # Also avoids int-to-str's ValueError on numbers of thousands of digits.
        return "an integer too large"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a value of type {type(value).__name__}"
