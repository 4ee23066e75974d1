"""ASGI middleware (Starlette, FastAPI, any ASGI app): one HTTP event per request.

``ProfilisASGI`` times HTTP requests with the shared core of ``profilis._http``; websocket and
lifespan scopes pass through untouched. The route is read from the scope after routing, so
it is the matched template, never the raw path. The event is emitted when the last body
message is handed to the server: streamed bodies are counted as they pass (nothing is
buffered) and background tasks that run after the response do not stretch its duration.
Starlette is imported only to learn its routing tree, never at import time. Profilis 1.x's
``profilis.asgi.middleware`` (``ProfilisASGIMiddleware``, ``ASGIConfig``) forwards to this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from profilis._http import (
    HTTP_METHODS,
    OTHER_METHOD,
    UNMATCHED_ROUTE,
    HttpTiming,
    check_middleware_args,
    parse_length,
    request_context,
)
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.runtime.clock import now_ns
from profilis.runtime.context import UNSAMPLED, RawContext, reset_current, set_current

__all__ = ["UNMATCHED_ROUTE", "ProfilisASGI", "RouteResolver", "StarletteRoutes"]

# The ASGI callables, as Starlette spells them (structural: no import needed).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Returns the route template of the request in ``scope`` (None when no route matched).
#: Called once per recorded request, after routing.
RouteResolver = Callable[[Scope], "str | None"]

#: Routes remembered per middleware; far above any real app, it only bounds a pathological one.
_LABELS_MAX: Final = 10_000
#: Mounts nested deeper than this are not followed (a router mounted inside itself).
_MOUNT_DEPTH_MAX: Final = 16
_MOUNT_TAIL: Final = "/{path}"


class ProfilisASGI:
    """Wraps an ASGI app and records one HTTP event per HTTP request.

    Use as ``app.add_middleware(ProfilisASGI, collector=c)`` (Starlette, FastAPI) or wrap any
    ASGI app: ``ProfilisASGI(app, emitter=e)``. ``route_resolver(scope)`` names the route;
    the default, ``StarletteRoutes``, reads Starlette's routing, Mount prefixes included.
    ``sample`` and ``exclude_routes`` are described on ``profilis._http.HttpTiming``.
    """

    __slots__ = (
        "_emit",
        "_hide_span",
        "_records_all",
        "_records_none",
        "_route_resolver",
        "_skip",
        "app",
        "timing",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        emitter: Emitter | None = None,
        collector: AsyncCollector[dict[str, Any]] | None = None,
        sample: float | None = None,
        exclude_routes: Iterable[str] | None = None,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        check_middleware_args("ASGI", app, route_resolver)
        self.app = app
        self.timing = HttpTiming(
            emitter=emitter, collector=collector, sample=sample, exclude_routes=exclude_routes
        )
        self._skip = self.timing.skip
        self._emit = self.timing.record
        self._records_all = self.timing.records_all
        self._records_none = self.timing.records_none
        resolver = route_resolver or StarletteRoutes()
        # A bound method is called faster than an object's __call__ (once per request).
        self._route_resolver: RouteResolver = (
            resolver.resolve if isinstance(resolver, StarletteRoutes) else resolver
        )
        # True for 1.x's errors-only recording of sampled-out requests: the request's event
        # keeps its span, but what runs inside sees it unsampled (no DB or FN events).
        self._hide_span = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websocket, lifespan: not ours to time
            await self.app(scope, receive, send)
            return
        context = None
        bytes_in = None
        try:
            if self._records_none or (
                not self._records_all and self._skip(scope.get("path") or "/")
            ):
                context = UNSAMPLED
            else:
                # One pass over the header list: a dict of it costs more than the scan.
                traceparent = None
                for name, value in scope.get("headers") or ():
                    if name == b"content-length":
                        bytes_in = parse_length(value)
                    elif name == b"traceparent":
                        traceparent = value
                if traceparent is None:
                    context = request_context(None, None)
                else:
                    tracestate = dict(scope["headers"]).get(b"tracestate")
                    context = request_context(
                        traceparent.decode("latin-1"),
                        tracestate.decode("latin-1") if tracestate else None,
                    )
        except Exception:  # a bug of ours must not cost the app its request
            pass
        if context is None:
            await self.app(scope, receive, send)
            return
        if context is UNSAMPLED:
            # Not recorded (sampled out, an excluded route, rate 0, a disabled collector): the
            # span-less context tells the DB and FN hooks to skip this request's events too.
            token = set_current(UNSAMPLED)
            try:
                await self.app(scope, receive, send)
            finally:
                reset_current(token)
            return
        token = set_current(UNSAMPLED if self._hide_span else context)

        # The response, as the app sends it: plain locals shared with ``metered_send``
        # (an object per request, with a bound method, costs more).
        status: int | None = None
        sent = 0
        end = 0  # when the last body message was handed over; 0 while the response is unfinished
        response_headers: Iterable[tuple[bytes, bytes]] = ()
        trailers = False

        def metered_send(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: a coroutine of ours
            # per message would cost more than everything else done here.
            nonlocal status, sent, end, response_headers, trailers
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body")
                if body:
                    sent += len(body)
                if message.get("more_body", False) or trailers:
                    return send(message)
            elif kind == "http.response.start":
                status = message.get("status")
                response_headers = message.get("headers") or ()
                trailers = bool(message.get("trailers", False))
                return send(message)
            elif kind == "http.response.pathsend":  # the server sends a file of declared size
                sent = parse_length(dict(response_headers).get(b"content-length")) or 0
            elif kind != "http.response.trailers" or message.get("more_trailers", False):
                return send(message)
            # The response is complete: its event goes now, as the last message is handed to
            # the server, so background tasks that run after it neither stretch its duration
            # nor delay it.
            if not end:
                end = now_ns()
                self._record(scope, context, status, end - start, None, sent, bytes_in)
            return send(message)

        start = now_ns()
        try:
            await self.app(scope, receive, metered_send)
        except BaseException as exc:
            if not end:
                self._record(
                    scope, context, status, now_ns() - start, type(exc).__name__, sent, bytes_in
                )
            raise
        else:
            if not end:  # the app returned without finishing its response
                self._record(scope, context, status, now_ns() - start, None, sent, bytes_in)
        finally:
            reset_current(token)

    def _record(
        self,
        scope: Scope,
        context: RawContext,
        status: int | None,
        dur_ns: int,
        error: str | None,
        sent: int | None,
        bytes_in: int | None,
    ) -> None:
        if status is None:  # no response started: the server answers 500, with its own body
            status, sent = 500, None
        try:
            route = self._route_resolver(scope)
        except Exception:  # the app's resolver is not allowed to fail its request either
            route = None
        try:
            method = scope.get("method", "")
            self._emit(
                route or UNMATCHED_ROUTE,
                status,
                dur_ns,
                method if method in HTTP_METHODS else OTHER_METHOD,
                error,
                bytes_in,
                sent,
                context,
            )
        except Exception:
            pass


class StarletteRoutes:
    """The default ``route_resolver``: the path template of the route Starlette matched.

    Starlette leaves the matched route in ``scope["route"]`` (the innermost one, under a
    Mount); its full template, Mount prefixes included (``/api/items/{id}``), is worked out
    once from the app's routing tree and remembered. No route, or a Mount whose router
    matched nothing, gives None (``<unmatched>``). Starlette versions that set only
    ``scope["endpoint"]`` are served through the endpoint.
    """

    def __init__(self) -> None:
        # id(route or endpoint) -> (the object itself, its label); the object is kept so a
        # recycled id can be told apart.
        self._labels: dict[int, tuple[object, str | None]] = {}

    def __call__(self, scope: Scope) -> str | None:
        return self.resolve(scope)

    def resolve(self, scope: Scope) -> str | None:
        """The route template of the request in ``scope``, or None when none matched."""
        key = scope.get("route")
        if key is None:
            key = scope.get("endpoint")
            if key is None:
                return None
        entry = self._labels.get(id(key))
        if entry is not None and entry[0] is key:
            return entry[1]
        return self._learn(key, scope)

    def _learn(self, key: object, scope: Scope) -> str | None:
        """Map every route of the app's routing tree to its label (routes may be added late)."""
        labels: dict[int, tuple[object, str | None]] = {}
        router = scope.get("router")
        if router is not None:
            _collect(getattr(router, "routes", ()), "", labels, 0)
        entry = labels.get(id(key))
        if entry is None or entry[0] is not key:
            # Not reachable from the top router (a router of its own, say): its own template.
            path_format = getattr(key, "path_format", None)
            entry = (key, path_format if isinstance(path_format, str) else None)
            labels[id(key)] = entry
        if len(self._labels) + len(labels) > _LABELS_MAX:
            self._labels.clear()
        self._labels.update(labels)
        return entry[1]


def _collect(
    routes: Iterable[object], prefix: str, labels: dict[int, tuple[object, str | None]], depth: int
) -> None:
    mount_types = _mount_types()
    for route in routes:
        if isinstance(route, mount_types):
            # A Mount's template ends in "/{path}"; a Host adds no path of its own.
            path_format = getattr(route, "path_format", "")
            inner_prefix = prefix
            if path_format.endswith(_MOUNT_TAIL):
                inner_prefix = prefix + path_format[: -len(_MOUNT_TAIL)]
            inner = getattr(route, "routes", None) or ()
            if inner and depth < _MOUNT_DEPTH_MAX:
                # Left in the scope, this Mount means its router matched nothing.
                labels[id(route)] = (route, None)
                _collect(inner, inner_prefix, labels, depth + 1)
            else:  # an app mounted whole (static files, a WSGI app): one label for all of it
                labels[id(route)] = (route, inner_prefix + _MOUNT_TAIL)
            continue
        path_format = getattr(route, "path_format", None)
        if isinstance(path_format, str):
            label = prefix + path_format
            labels[id(route)] = (route, label)
            endpoint = getattr(route, "endpoint", None)
            if endpoint is not None and id(endpoint) not in labels:
                labels[id(endpoint)] = (endpoint, label)


def _mount_types() -> tuple[type, ...]:
    try:
        from starlette.routing import Host, Mount
    except ImportError:  # a Starlette-like router without Starlette: no mounts to follow
        return ()
    return (Mount, Host)
