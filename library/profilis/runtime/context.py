"""The current trace and span, carried on ``contextvars`` (thread- and asyncio-safe).

One ``ContextVar`` holds the span context as a plain tuple, so the hot path reads it with a
single ``get()``. The Profilis 1.x setters (``set_trace_id``...) are kept for
migrating users; new code uses ``use_span``.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import NamedTuple

from profilis.runtime.ids import new_span_id, new_trace_id

__all__ = [
    "UNSAMPLED",
    "SpanContext",
    "current_span",
    "get_current_parent_span_id",
    "get_parent_span_id",
    "get_span_id",
    "get_trace_id",
    "reset_span_id",
    "reset_trace_id",
    "set_span_id",
    "set_trace_id",
    "use_span",
]


class SpanContext(NamedTuple):
    """Where the current code runs in a trace (W3C Trace Context fields)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    #: W3C trace-flags; bit 0 is "sampled".
    trace_flags: int = 1
    #: The incoming ``tracestate`` header, passed through untouched.
    tracestate: str | None = None


#: What the ContextVar holds: the fields of SpanContext in order. Hot paths (the decorator,
#: the emitter) build and read plain tuples, which costs a fraction of a NamedTuple; the
#: public accessors below wrap them.
RawContext = tuple[str, str, "str | None", int, "str | None"]

_current: ContextVar[RawContext | None] = ContextVar("profilis_span", default=None)

#: The context of a request that is not recorded (sampled out, or under an excluded route):
#: the DB and FN events it causes are not recorded either. Hot paths test it by identity
#: (``ctx is UNSAMPLED``); the public accessors below show it as "no span".
UNSAMPLED: RawContext = ("", "", None, 0, None)

#: Bound methods for hot paths elsewhere in the package (one attribute lookup saved per call).
get_current = _current.get
set_current = _current.set
reset_current = _current.reset


def current_span() -> SpanContext | None:
    """Return the active span context, or None outside any span."""
    raw = _current.get()
    if raw is None or raw is UNSAMPLED:
        return None
    if isinstance(raw, SpanContext):
        return raw
    return SpanContext(*raw)


def get_trace_id() -> str | None:
    ctx = _current.get()
    return None if ctx is None or ctx is UNSAMPLED else ctx[0]


def get_span_id() -> str | None:
    ctx = _current.get()
    return None if ctx is None or ctx is UNSAMPLED else ctx[1]


def get_parent_span_id() -> str | None:
    ctx = _current.get()
    return None if ctx is None or ctx is UNSAMPLED else ctx[2]


#: The Profilis 1.x name.
get_current_parent_span_id = get_parent_span_id


def set_trace_id(value: str | None) -> Token[RawContext | None]:
    """1.x API: make ``value`` the current trace id, keeping the current span id."""
    ctx = current_span()
    if value is None:
        return _current.set(None)
    if ctx is None:
        return _current.set(SpanContext(value, new_span_id()))
    return _current.set(ctx._replace(trace_id=value))


def set_span_id(value: str | None) -> Token[RawContext | None]:
    """1.x API: make ``value`` the current span id; its parent becomes the previous span."""
    ctx = current_span()
    if value is None:
        return _current.set(None if ctx is None else ctx._replace(span_id=new_span_id()))
    if ctx is None:
        return _current.set(SpanContext(new_trace_id(), value))
    return _current.set(SpanContext(ctx.trace_id, value, ctx.span_id, ctx.trace_flags))


def reset_trace_id(token: Token[RawContext | None]) -> None:
    _current.reset(token)


def reset_span_id(token: Token[RawContext | None]) -> None:
    _current.reset(token)


class use_span:  # lowercase: it replaces the 1.x function of that name
    """Run a block inside a span: ``with use_span(): ...``.

    Without arguments it opens a child of the current span (or a new trace). Pass
    ``trace_id``/``span_id`` to adopt ids from elsewhere (an incoming request, another
    tracer); ``parent_span_id`` defaults to the span that was current when entering.
    """

    __slots__ = ("_context", "_token")

    def __init__(
        self,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
        *,
        trace_flags: int | None = None,
        tracestate: str | None = None,
    ) -> None:
        outer = current_span()
        if parent_span_id is None and outer is not None and trace_id in (None, outer.trace_id):
            parent_span_id = outer.span_id
        if trace_id is None:
            trace_id = outer.trace_id if outer is not None else new_trace_id()
        if trace_flags is None:
            trace_flags = outer.trace_flags if outer is not None else 1
        if tracestate is None and outer is not None and outer.trace_id == trace_id:
            tracestate = outer.tracestate
        self._context = SpanContext(
            trace_id, span_id or new_span_id(), parent_span_id, trace_flags, tracestate
        )
        self._token: Token[RawContext | None] | None = None

    @property
    def context(self) -> SpanContext:
        return self._context

    def __enter__(self) -> SpanContext:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
