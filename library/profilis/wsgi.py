"""WSGI middleware: one HTTP event per request, with the shared core of ``profilis._http``.

``ProfilisWSGI`` reads only the environ and what the app passes to ``start_response``. It never
touches ``wsgi.input``, and a response body passes through unbuffered: a sized or in-memory
body is returned as it is; a streamed one is counted chunk by chunk as the server pulls it and
its event is emitted when the server closes it. ``profilis.flask`` builds on this class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from profilis._http import (
    ERROR_ENVIRON_KEY,
    HTTP_METHODS,
    OTHER_METHOD,
    ROUTE_ENVIRON_KEY,
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

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ERROR_ENVIRON_KEY",
    "ROUTE_ENVIRON_KEY",
    "UNMATCHED_ROUTE",
    "ProfilisWSGI",
    "RouteResolver",
]

#: Returns the route template of the request in ``environ`` (or None when no route matched).
#: Called when the app calls ``start_response`` (frameworks still hold their request state
#: then), or once the app has returned if it never did.
RouteResolver = Callable[["WSGIEnvironment"], "str | None"]

_CONTENT_LENGTH = "content-length"


class ProfilisWSGI:
    """Wraps a WSGI app and records one HTTP event per request.

    ``route_resolver(environ)`` names the route template. An app may instead (or as well) put
    it in ``environ["profilis.route"]``, and the type name of an exception it turned into a
    500 in ``environ["profilis.error"]``. A request with no known route is labelled
    ``<unmatched>``: the raw path is never a label. ``sample`` and ``exclude_routes`` are
    described on ``profilis._http.HttpTiming``.
    """

    __slots__ = (
        "_emit",
        "_records_all",
        "_records_none",
        "_route_resolver",
        "_skip",
        "app",
        "timing",
    )

    def __init__(
        self,
        app: WSGIApplication,
        *,
        emitter: Emitter | None = None,
        collector: AsyncCollector[dict[str, Any]] | None = None,
        sample: float | None = None,
        exclude_routes: Iterable[str] | None = None,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        check_middleware_args("WSGI", app, route_resolver)
        self.app = app
        self.timing = HttpTiming(
            emitter=emitter, collector=collector, sample=sample, exclude_routes=exclude_routes
        )
        # Bound once: they run on every request.
        self._skip = self.timing.skip
        self._emit = self.timing.record
        self._records_all = self.timing.records_all
        self._records_none = self.timing.records_none
        self._route_resolver = route_resolver

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            if self._records_none or (
                not self._records_all and self._skip(environ.get("PATH_INFO") or "/")
            ):
                context = UNSAMPLED
            else:
                context = request_context(
                    environ.get("HTTP_TRACEPARENT"), environ.get("HTTP_TRACESTATE")
                )
        except Exception:  # a bug of ours must not cost the app its request
            return self.app(environ, start_response)
        token = set_current(context)
        if context is UNSAMPLED:
            # Not recorded: the span-less context tells the DB and FN hooks to skip the events
            # this request causes too (those of the app call; a body the server pulls later
            # runs outside it).
            try:
                return self.app(environ, start_response)
            finally:
                reset_current(token)
        exchange = _Exchange(environ, start_response, self._route_resolver)
        start = now_ns()
        try:
            body = self.app(environ, exchange.start_response)
        except BaseException as exc:
            # A server answers 500 when the app raises before its first body chunk.
            self._record(exchange, context, 500, now_ns() - start, type(exc).__name__, None)
            reset_current(token)
            raise
        end = now_ns()
        try:
            code = exchange.code
            if code is not None:
                sent = exchange.length
                if sent is None and (type(body) is list or type(body) is tuple):
                    # In memory already; wrapping it would also hide its len() from servers
                    # that derive a Content-Length from a one-item list.
                    sent = sum(map(len, body))
                if sent is not None or _is_file_wrapper(body, environ):
                    self._record(exchange, context, code, end - start, None, sent)
                    return body
            # Produced while the server pulls it (or start_response is still to come).
            return _MeteredBody(self, exchange, body, start, context)
        except Exception:
            return body
        finally:
            reset_current(token)

    def _record(
        self,
        exchange: _Exchange,
        context: RawContext,
        status: int,
        dur_ns: int,
        error: str | None,
        bytes_out: int | None,
    ) -> None:
        try:
            environ = exchange.environ
            route = exchange.route
            if route is None:
                route = environ.get(ROUTE_ENVIRON_KEY) or exchange.resolve_route()
            if error is None and status >= 500:
                error = environ.get(ERROR_ENVIRON_KEY)
            method = environ.get("REQUEST_METHOD", "")
            length = environ.get("CONTENT_LENGTH")
            self._emit(
                route or UNMATCHED_ROUTE,
                status,
                dur_ns,
                method if method in HTTP_METHODS else OTHER_METHOD,
                error,
                parse_length(length) if length else None,
                bytes_out,
                context,
            )
        except Exception:
            pass


class _Exchange:
    """One request: stands in for the server's ``start_response``, noting what passes.

    The status, Content-Length and route are read when the app starts its response, the one
    moment a framework is sure to still hold its request state.
    """

    __slots__ = ("_resolver", "_start_response", "code", "environ", "length", "route")

    def __init__(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        resolver: RouteResolver | None,
    ) -> None:
        self.environ = environ
        self._start_response = start_response
        self._resolver = resolver
        self.code: int | None = None
        self.length: int | None = None
        self.route: str | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        """What the app calls as ``start_response`` (a bound method: cheaper to call)."""
        try:
            code = _STATUS_CODES.get(status)
            self.code = code if code is not None else _status_code(status)
            self.length = None
            for name, value in headers:
                if len(name) == 14 and name.lower() == _CONTENT_LENGTH:
                    self.length = parse_length(value)
            if self.route is None and self._resolver is not None:
                self.route = self._resolver(self.environ)
        except Exception:  # neither we nor the app's resolver may fail its request
            pass
        # Passed on exactly as received: some servers tell the two call forms apart.
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)

    def resolve_route(self) -> str | None:
        if self._resolver is None:
            return None
        try:
            return self._resolver(self.environ)
        except Exception:
            return None


class _MeteredBody:
    """A streamed body: each chunk is counted as the server pulls it, none is held back.

    The request's span is current while the app produces a chunk, so events from inside a
    streaming generator join the request's trace. The event is emitted once, at the end of
    the body or at ``close()``, whichever comes first.
    """

    __slots__ = (
        "_body",
        "_chunks",
        "_context",
        "_done",
        "_exchange",
        "_middleware",
        "_sent",
        "_start_ns",
    )

    def __init__(
        self,
        middleware: ProfilisWSGI,
        exchange: _Exchange,
        body: Iterable[bytes],
        start_ns: int,
        context: RawContext,
    ) -> None:
        self._chunks: Iterator[bytes] = iter(body)
        self._body = body
        self._middleware = middleware
        self._exchange = exchange
        self._start_ns = start_ns
        self._context = context
        self._sent = 0
        self._done = False

    def __iter__(self) -> _MeteredBody:
        return self

    def __next__(self) -> bytes:
        token = set_current(self._context)
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(type(exc).__name__)
            raise
        finally:
            reset_current(token)
        with contextlib.suppress(TypeError):  # not bytes: the server will say so, not us
            self._sent += len(chunk)
        return chunk

    def close(self) -> None:
        token = set_current(self._context)
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._finish(type(exc).__name__)
            raise
        finally:
            self._finish(None)
            reset_current(token)

    def _finish(self, error: str | None) -> None:
        if self._done:
            return
        self._done = True
        code = self._exchange.code
        if code is None:
            code = 500
        dur_ns = now_ns() - self._start_ns
        self._middleware._record(self._exchange, self._context, code, dur_ns, error, self._sent)


# "200 OK" -> 200, remembered: an app uses a handful of status lines, and a dict lookup costs
# a third of parsing one. Bounded, since the app may put anything after the code.
_STATUS_CODES: dict[str, int] = {}
_STATUS_CODES_MAX = 256


def _status_code(status: str) -> int:
    try:
        code = int(status[:3])
    except ValueError:
        code = 500
    if len(_STATUS_CODES) < _STATUS_CODES_MAX:
        _STATUS_CODES[status] = code
    return code


def _is_file_wrapper(body: object, environ: WSGIEnvironment) -> bool:
    # Servers send these with sendfile() only if they get their own object back.
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(body, wrapper)
