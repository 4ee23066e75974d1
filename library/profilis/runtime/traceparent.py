"""W3C Trace Context: parse and format ``traceparent``; carry ``tracestate`` through.

Parsing follows the W3C recommendation: lowercase hex only, all-zero ids and version ``ff``
are invalid, and a future version may append fields after the four we know.
"""

from __future__ import annotations

from profilis.runtime.context import SpanContext
from profilis.runtime.ids import new_span_id

__all__ = ["format_traceparent", "parse_traceparent"]

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: W3C: vendors may truncate tracestate beyond 512 characters; we drop it instead of cutting
#: an entry in half.
_TRACESTATE_MAX = 512


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)


def parse_traceparent(header: str | None, tracestate: str | None = None) -> SpanContext | None:
    """Return the remote parent's context from a ``traceparent`` header, or None if invalid.

    The result describes a NEW span of ours: its ``parent_span_id`` is the caller's span and
    its ``span_id`` is freshly generated, so it can be passed straight to ``use_span``.
    """
    if not header:
        return None
    header = header.strip()
    if len(header) < 55:
        return None
    version = header[0:2]
    if not _is_hex(version) or version == "ff":
        return None
    if version == "00" and len(header) != 55:
        return None
    if len(header) > 55 and header[55] != "-":
        return None
    if header[2] != "-" or header[35] != "-" or header[52] != "-":
        return None
    trace_id = header[3:35]
    parent_id = header[36:52]
    flags = header[53:55]
    if not (_is_hex(trace_id) and _is_hex(parent_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if tracestate is not None:
        tracestate = tracestate.strip() or None
        if tracestate is not None and len(tracestate) > _TRACESTATE_MAX:
            tracestate = None
    return SpanContext(trace_id, new_span_id(), parent_id, int(flags, 16), tracestate)


def format_traceparent(context: SpanContext) -> str:
    """Return the ``traceparent`` header that makes ``context``'s span the remote parent."""
    return f"00-{context.trace_id}-{context.span_id}-{context.trace_flags & 0xFF:02x}"
