"""Profilis events as OTLP spans: the event-to-``Span`` mapping and the request envelope.

Used only by ``profilis.exporters.otlp``. HTTP and FN events are spans of their own (the
request's, the call's); a DB event names the span it ran in, and becomes a child of it.
Attribute names follow the OpenTelemetry semantic conventions; where one was renamed
(``db.system`` -> ``db.system.name``, ``code.function`` -> ``code.function.name``) both
names are set, since backends in use today read one or the other.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from typing import Any, Final

from profilis._version import __version__
from profilis.schema import is_valid_span_id, is_valid_trace_id

try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the OTLP exporter needs opentelemetry-proto: pip install 'profilis[otlp]'"
    ) from exc

__all__ = ["ExportTraceServiceResponse", "Span", "encode_request", "event_to_span"]

_SCOPE: Final = InstrumentationScope(name="profilis", version=__version__)
_getrandbits = random.getrandbits  # ids must be unique, not secret (see profilis.runtime.ids)


def _attr(key: str, value: str | int) -> KeyValue:
    # bool is never passed here; int covers status codes, sizes and row counts.
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _ids(event: Mapping[str, Any], own_span: bool) -> tuple[bytes, bytes, bytes]:
    """(trace_id, span_id, parent_span_id) as bytes; ids the event lacks are generated.

    ``own_span=False``: the event's span is the one it ran *in* (DB events carry the current
    span, see ``Emitter.emit_db``), so it becomes the parent of a new span, not its id.
    """
    trace_id = event.get("trace_id")
    span_id = event.get("span_id")
    parent = event.get("parent_span_id")
    if not own_span:
        span_id, parent = None, span_id
    if is_valid_trace_id(trace_id):
        trace = bytes.fromhex(trace_id)
        parent_bytes = bytes.fromhex(parent) if is_valid_span_id(parent) else b""
    else:
        # A root span of its own: a parent id without its trace would point nowhere.
        trace = (_getrandbits(128) or 1).to_bytes(16, "big")
        parent_bytes = b""
    span = bytes.fromhex(span_id) if is_valid_span_id(span_id) else b""
    return trace, span or (_getrandbits(64) or 1).to_bytes(8, "big"), parent_bytes


def event_to_span(event: Mapping[str, Any]) -> Span:
    """One event as one span. Raises ``TypeError``/``ValueError`` on an event out of schema."""
    kind = event.get("kind")
    start = int(event["ts_ns"])
    end = start + int(event["dur_ns"])
    error = event.get("error")
    attributes: list[KeyValue] = []
    failed = bool(error)
    if kind in ("HTTP", "REQ"):
        method = str(event.get("method") or "_OTHER")
        route = str(event.get("route", ""))
        status = int(event["status"])
        name = f"{method} {route}" if route else method
        span_kind = Span.SPAN_KIND_SERVER
        attributes += [
            _attr("http.request.method", method),
            _attr("http.route", route),
            _attr("http.response.status_code", status),
        ]
        for field, key in (
            ("bytes_in", "http.request.body.size"),
            ("bytes_out", "http.response.body.size"),
        ):
            if event.get(field) is not None:
                attributes.append(_attr(key, int(event[field])))
        # Server spans: 5xx is an error, 4xx is the client's (semantic conventions).
        if status >= 500:
            failed = True
            error = error or str(status)
    elif kind == "DB":
        query = str(event["query"])
        operation = query.split(None, 1)[0].upper() if query.strip() else ""
        vendor = event.get("db_vendor")
        name = operation if operation.isalpha() else str(vendor or "DB")
        span_kind = Span.SPAN_KIND_CLIENT
        attributes.append(_attr("db.query.text", query))  # already redacted by the emitter
        if vendor:
            attributes += [_attr("db.system", str(vendor)), _attr("db.system.name", str(vendor))]
        if operation.isalpha():
            attributes.append(_attr("db.operation.name", operation))
        if event.get("rows") is not None:
            attributes.append(_attr("db.response.returned_rows", int(event["rows"])))
    elif kind == "FN":
        qualified = str(event["fn"])
        namespace, _, function = qualified.rpartition(".")
        name = qualified
        span_kind = Span.SPAN_KIND_INTERNAL
        attributes += [_attr("code.function", function), _attr("code.function.name", qualified)]
        if namespace:
            attributes.append(_attr("code.namespace", namespace))
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    if error:
        attributes.append(_attr("error.type", str(error)))
    trace_id, span_id, parent_span_id = _ids(event, own_span=kind != "DB")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=span_kind,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=attributes,
        status=Status(code=Status.STATUS_CODE_ERROR, message=str(error)) if failed else None,
    )


def encode_request(spans: Sequence[Span], service_name: str) -> bytes:
    """The body of one ``POST /v1/traces``: every span under one resource and scope."""
    resource = Resource(
        attributes=[
            _attr("service.name", service_name),
            _attr("telemetry.sdk.name", "profilis"),
            _attr("telemetry.sdk.language", "python"),
            _attr("telemetry.sdk.version", __version__),
            _attr("process.pid", os.getpid()),
        ]
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=_SCOPE, spans=spans)])
        ]
    )
    body: bytes = request.SerializeToString()  # typed here: protobuf ships no stubs
    return body
