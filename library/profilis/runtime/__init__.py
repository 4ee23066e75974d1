"""Runtime context for events: clocks, ids, the current span, and W3C Trace Context.

Everything here is safe on the hot path: no locks, no syscalls per id, one ContextVar read.
"""

from profilis.runtime.clock import now_ns, wall_ns
from profilis.runtime.context import (
    SpanContext,
    current_span,
    get_current_parent_span_id,
    get_parent_span_id,
    get_span_id,
    get_trace_id,
    reset_span_id,
    reset_trace_id,
    set_span_id,
    set_trace_id,
    use_span,
)
from profilis.runtime.ids import new_span_id, new_trace_id, span_id
from profilis.runtime.traceparent import format_traceparent, parse_traceparent

__all__ = [
    "SpanContext",
    "current_span",
    "format_traceparent",
    "get_current_parent_span_id",
    "get_parent_span_id",
    "get_span_id",
    "get_trace_id",
    "new_span_id",
    "new_trace_id",
    "now_ns",
    "parse_traceparent",
    "reset_span_id",
    "reset_trace_id",
    "set_span_id",
    "set_trace_id",
    "span_id",
    "use_span",
    "wall_ns",
]
