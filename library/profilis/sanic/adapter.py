"""``instrument_sanic_app``: one HTTP event per Sanic request, through the shared timing core.

Sanic's own server is not ASGI, so instead of ``profilis.asgi`` this module listens to three
of Sanic's request lifecycle signals and hands what they carry to ``profilis._http``:
``http.lifecycle.handle`` (a request starts: sampling, span context), ``http.lifecycle.
exception`` (the type name of what went wrong) and ``http.lifecycle.response`` (the response,
error pages included, is about to be sent: route template, status, size). The dashboard is in
``profilis.sanic.ui``. Importing this module imports Sanic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Final

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from profilis._compat import warn_deprecated
from profilis._http import (
    UNMATCHED_ROUTE,
    HttpTiming,
    method_label,
    parse_length,
    request_context,
)
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.runtime.clock import now_ns
from profilis.runtime.context import UNSAMPLED, RawContext, reset_current, set_current
from profilis.sanic._asgi_mount import AsgiApp, mount_asgi
from profilis.sanic._legacy import LegacySampling, SanicConfig

__all__ = ["HTTP_INTERNAL_SERVER_ERROR", "SanicConfig", "instrument_sanic_app"]

#: 1.x name: the status from which a response counts as a server error.
HTTP_INTERNAL_SERVER_ERROR: Final = 500
#: Where the adapter keeps the request in flight, on ``request.ctx``.
_EXCHANGE_ATTR: Final = "_profilis"
#: Where an app remembers that it is instrumented, on ``app.ctx``.
_APP_MARK: Final = "_profilis_instrumented"


class _Exchange:
    """One request in flight: when it started, its span, and whether it is recorded."""

    __slots__ = ("context", "error", "recorded", "start_ns", "token")

    def __init__(self, context: RawContext, recorded: bool) -> None:
        #: The span of the request's own event (UNSAMPLED when it has none).
        self.context = context
        # Set inside Sanic's handling task: the handler and everything it awaits see it. A
        # request not recorded is unsampled for what it causes too (DB, FN events), even
        # one that 1.x's sampling would still record if it fails.
        self.token = set_current(context if recorded else UNSAMPLED)
        #: False for a request sampled out (1.x: recorded only if it fails).
        self.recorded = recorded
        self.error: str | None = None
        self.start_ns = now_ns()


def instrument_sanic_app(
    app: Sanic[Any, Any],
    emitter: Emitter | None = None,
    config: SanicConfig | None = None,
    *,
    collector: AsyncCollector[dict[str, Any]] | None = None,
    sample: float = 1.0,
    exclude_routes: Iterable[str] = (),
    mount_asgi_app: AsgiApp | None = None,
    mount_path: str = "/profilis",
) -> None:
    """Record one HTTP event per request of ``app``, labelled with Sanic's route template.

    Pass ``emitter`` (or ``collector=``). ``sample`` and ``exclude_routes`` are those of every
    Profilis 2 adapter (``profilis._http.HttpTiming``); a 1.x ``SanicConfig`` is still
    accepted in their place. Unmatched requests (404s) are labelled ``<unmatched>``.
    ``mount_asgi_app`` serves an ASGI app (``profilis.ui.make_ui_asgi_app(stats)``, say) under
    ``mount_path``. Call before the app starts; an app is instrumented once.
    """
    if not isinstance(app, Sanic):
        raise TypeError(f"app must be a Sanic app, got {type(app).__name__}")
    if getattr(app.ctx, _APP_MARK, False):
        raise RuntimeError(f"Sanic app {app.name!r} is already instrumented by Profilis")
    legacy = None
    if config is not None:
        if sample != 1.0 or exclude_routes:
            raise TypeError("pass config= (Profilis 1.x) or sample=/exclude_routes=, not both")
        warn_deprecated(
            "profilis.sanic.adapter.SanicConfig",
            "instrument_sanic_app(app, emitter, sample=..., exclude_routes=[...])",
        )
        legacy = LegacySampling(config)
    timing = HttpTiming(
        emitter=emitter, collector=collector, sample=sample, exclude_routes=exclude_routes
    )
    _register(app, timing, legacy)
    setattr(app.ctx, _APP_MARK, True)
    if mount_asgi_app is not None:
        mount_asgi(app, mount_asgi_app, mount_path)


def _register(app: Sanic[Any, Any], timing: HttpTiming, legacy: LegacySampling | None) -> None:
    skip = timing.skip
    record = timing.record

    async def on_handle(request: Request) -> None:
        try:
            path = request.path or "/"
            if legacy is None:
                recorded, failures_kept = not skip(path), False
            else:  # 1.x: None = excluded, False = sampled out (but recorded if it fails)
                decision = legacy.decide(path)
                recorded, failures_kept = decision is True, decision is False
            connection = request.conn_info
            if connection is not None:
                # The previous request of this connection never got to its response
                # (cancelled): leave its span, or this request would become its child.
                stale = getattr(connection.ctx, _EXCHANGE_ATTR, None)
                if stale is not None:
                    _leave(stale)
            if not recorded and not failures_kept:
                context = UNSAMPLED  # its event will not be recorded: no span to make
            else:
                headers = request.headers
                context = request_context(headers.get("traceparent"), headers.get("tracestate"))
            exchange = _Exchange(context, recorded)
            setattr(request.ctx, _EXCHANGE_ATTR, exchange)
            if connection is not None:
                setattr(connection.ctx, _EXCHANGE_ATTR, exchange)
        except Exception:  # a bug of ours must not cost the app its request
            pass

    async def on_exception(request: Request, exception: BaseException) -> None:
        exchange = getattr(request.ctx, _EXCHANGE_ATTR, None)
        if exchange is not None and exchange.error is None:
            exchange.error = type(exception).__name__

    async def on_response(request: Request, response: HTTPResponse) -> None:
        exchange = getattr(request.ctx, _EXCHANGE_ATTR, None)
        if exchange is None:
            return
        # Taken, so a response sent twice (an error after a streamed start) counts once.
        setattr(request.ctx, _EXCHANGE_ATTR, None)
        if request.conn_info is not None:
            setattr(request.conn_info.ctx, _EXCHANGE_ATTR, None)
        end = now_ns()
        try:
            status = int(response.status)
            # Sanic raises for 404s and 400s too: only what ends in a 5xx is an error.
            error = exchange.error if status >= HTTP_INTERNAL_SERVER_ERROR else None
            if exchange.recorded or (
                legacy is not None
                and exchange.context is not UNSAMPLED
                and legacy.keeps_failure(status, error)
            ):
                route = request.route
                body = response.body
                record(
                    "/" + route.path if route is not None else UNMATCHED_ROUTE,
                    status,
                    end - exchange.start_ns,
                    method_label(request.method),
                    error,
                    parse_length(request.headers.get("content-length")),
                    len(body) if isinstance(body, bytes) else None,
                    exchange.context,
                )
        except Exception:
            pass
        finally:
            _leave(exchange)

    app.signal("http.lifecycle.handle")(on_handle)
    app.signal("http.lifecycle.exception")(on_exception)
    app.signal("http.lifecycle.response")(on_response)


def _leave(exchange: _Exchange) -> None:
    """Leave the request's span: requests of a keep-alive connection share one task."""
    # ValueError: set in another context (a signal run as a task), nothing to undo.
    with contextlib.suppress(ValueError):
        reset_current(exchange.token)
