"""The request-timing core shared by every web adapter (``wsgi``, ``flask``, ``asgi``).

An adapter asks ``HttpTiming.skip`` once per request (sampling, excluded prefixes), makes the
``request_context`` current so FN and DB events inside share the request's trace, and hands
one HTTP event to ``HttpTiming.record`` when the response is complete. The adapters only read
their protocol (environ, ASGI scope and messages); every decision about what is recorded, and
under which trace, is made here.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

from profilis._validation import check_float
from profilis.config import resolve_setting
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError
from profilis.runtime.context import UNSAMPLED, RawContext, get_current
from profilis.runtime.ids import new_span_id, pool_pop
from profilis.runtime.traceparent import parse_traceparent

__all__ = [
    "ERROR_ENVIRON_KEY",
    "HTTP_METHODS",
    "OTHER_METHOD",
    "ROUTE_ENVIRON_KEY",
    "UNMATCHED_ROUTE",
    "HttpTiming",
    "check_middleware_args",
    "check_route_prefixes",
    "method_label",
    "parse_length",
    "request_context",
    "resolve_emitter",
]

#: The one route label for requests no route matched (404s, redirects, unknown mounts):
#: raw paths would give every scanner's probe its own metric series.
UNMATCHED_ROUTE: Final = "<unmatched>"
#: OpenTelemetry's value for a method outside the standard set; a client chooses the method,
#: so an open set of values would be an unbounded label.
OTHER_METHOD: Final = "_OTHER"
#: A WSGI framework that turns an exception into a 500 response itself (Flask does) stores the
#: exception's type name here, so the HTTP event still says what went wrong.
ERROR_ENVIRON_KEY: Final = "profilis.error"
#: Where such a framework stores the route template when its request state is gone before
#: ``start_response`` (Flask, when it lets an exception propagate).
ROUTE_ENVIRON_KEY: Final = "profilis.route"

#: The methods recorded as they are; any other becomes ``OTHER_METHOD``.
HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_random = random.random
_OTEL_TRACE_MODULE: Final = "opentelemetry.trace"


def resolve_emitter(
    emitter: Emitter | None, collector: AsyncCollector[dict[str, Any]] | None
) -> Emitter:
    """The emitter an adapter writes to: ``emitter=``, or a new one over ``collector=``."""
    if emitter is not None:
        if not isinstance(emitter, Emitter):
            raise TypeError(f"emitter must be a profilis Emitter, got {type(emitter).__name__}")
        if collector is not None and emitter.collector is not collector:
            raise TypeError("pass emitter= or collector=, not both")
        return emitter
    if collector is None:
        raise TypeError("an emitter= or a collector= is required")
    if not isinstance(collector, AsyncCollector):
        raise TypeError(f"collector must be an AsyncCollector, got {type(collector).__name__}")
    return Emitter(collector)


def check_middleware_args(protocol: str, app: object, route_resolver: object) -> None:
    """The WSGI and ASGI middlewares' own arguments: a callable app, an optional resolver."""
    if not callable(app):
        raise TypeError(f"app must be a {protocol} callable, got {type(app).__name__}")
    if route_resolver is not None and not callable(route_resolver):
        raise TypeError(f"route_resolver must be a callable taking the {protocol} request")


def check_route_prefixes(setting: str, value: object) -> tuple[str, ...]:
    """Return path prefixes as a tuple (``str.startswith`` takes it whole), each checked."""
    accepted = "a list of path prefixes, each starting with '/'"
    # A lone string is iterable too, and "/health" must not become ("/", "h", "e", ...).
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(setting, accepted, value)
    prefixes = tuple(dict.fromkeys(value))
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigError(setting, accepted, prefix)
    return prefixes


def method_label(method: str) -> str:
    """``method`` if it is a standard HTTP method, else ``_OTHER``."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def parse_length(text: str | bytes | None) -> int | None:
    """A Content-Length header's value as an int, or None when absent or malformed."""
    if not text:
        return None
    try:
        length = int(text)
    except ValueError:
        return None
    return length if length >= 0 else None


def _otel_context(trace_module: Any) -> RawContext | None:
    """The active OpenTelemetry span as our raw context, or None if there is none."""
    try:
        span = trace_module.get_current_span()
        context = span.get_span_context()
        if not context.is_valid:
            return None
        # SDK spans know their parent; other span types may not, and the ids are what matter.
        parent = getattr(span, "parent", None)
        parent_id = f"{parent.span_id:016x}" if parent is not None else None
        state = context.trace_state.to_header() if context.trace_state else None
        return (
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
            parent_id,
            int(context.trace_flags),
            state or None,
        )
    except Exception:  # a broken tracer must not cost the app its request
        return None


def request_context(traceparent: str | None, tracestate: str | None) -> RawContext:
    """The span context of a new request, from the first source that has one.

    1. An active OpenTelemetry span (when the app already runs OpenTelemetry): its own ids,
       so both tools describe the request with one span.
    2. The current Profilis span (an app served inside another instrumented app): a child
       (not of a request left unrecorded: its decision was about its own event).
    3. The W3C ``traceparent`` header: a child of the remote caller's span.
    4. Otherwise a new trace.
    """
    # Only a lookup when OpenTelemetry is absent: we never import it ourselves.
    otel = sys.modules.get(_OTEL_TRACE_MODULE)
    if otel is not None:
        adopted = _otel_context(otel)
        if adopted is not None:
            return adopted
    outer = get_current()
    if outer is not None and outer is not UNSAMPLED:
        return (outer[0], new_span_id(), outer[1], outer[3], outer[4])
    if traceparent:
        remote = parse_traceparent(traceparent, tracestate)
        if remote is not None:
            return remote
    # A root span's id is the low half of its new trace id: two ids from the pool (see
    # ``profilis.runtime.ids``) instead of a random draw and its conversion per request.
    try:
        span = pool_pop()
        return (pool_pop() + span, span, None, 1, None)
    except IndexError:
        span = new_span_id()
        return (new_span_id() + span, span, None, 1, None)


class HttpTiming:
    """What every web adapter shares: settings checked once, and the per-request steps.

    ``sample`` is the fraction of requests recorded, in [0, 1]; the decision is one
    ``random()`` per request and a request left out costs nothing more. ``exclude_routes``
    lists path prefixes never recorded (health checks, ``/metrics``). Left as ``None`` they
    are ``PROFILIS_SAMPLE_RATE`` and ``PROFILIS_EXCLUDE_ROUTES`` (else 1.0 and none), read
    here, once: the one place every adapter's defaults come from. A disabled collector
    (``PROFILIS_ENABLED=false``) gets no request at all.
    """

    __slots__ = (
        "_rate",
        "emitter",
        "exclude_routes",
        "record",
        "records_all",
        "records_none",
        "sample",
    )

    def __init__(
        self,
        *,
        emitter: Emitter | None = None,
        collector: AsyncCollector[dict[str, Any]] | None = None,
        sample: float | None = None,
        exclude_routes: Iterable[str] | None = None,
    ) -> None:
        self.emitter = resolve_emitter(emitter, collector)
        self.sample = check_float(
            "sample", resolve_setting("sample_rate", sample), minimum=0.0, maximum=1.0
        )
        self.exclude_routes = check_route_prefixes(
            "exclude_routes", resolve_setting("exclude_routes", exclude_routes)
        )
        # Rate 0 skips every request: a disabled collector would only count them as drops.
        self._rate = self.sample if self.emitter.collector.enabled else 0.0
        #: True when ``skip`` is False for every request (rate 1, nothing excluded): adapters
        #: test this flag before calling ``skip``, which saves a call on every request.
        self.records_all = self._rate >= 1.0 and not self.exclude_routes
        #: True when ``skip`` is True for every request (rate 0, or a disabled collector).
        self.records_none = self._rate <= 0.0
        #: ``record(route, status, dur_ns, method, error, bytes_in, bytes_out[, context])``:
        #: emits one HTTP event under ``context`` (else the current span). Bound once, as it
        #: runs on every request.
        self.record: Callable[
            [str, int, int, str, str | None, int | None, int | None, RawContext | None], None
        ] = self.emitter.emit_http

    def skip(self, path: str) -> bool:
        """True when this request is not recorded (sampled out, or under an excluded prefix)."""
        rate = self._rate
        if rate < 1.0 and (rate <= 0.0 or _random() >= rate):
            return True
        return path.startswith(self.exclude_routes)
