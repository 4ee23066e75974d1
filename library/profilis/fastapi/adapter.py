"""``instrument_fastapi``: adds ``profilis.asgi.ProfilisASGI`` to a FastAPI (or Starlette) app.

A convenience over ``app.add_middleware(ProfilisASGI, ...)`` that checks the settings at once:
Starlette builds its middleware only when the app first runs, which would report a bad
``sample`` at the first request instead of at start-up. FastAPI itself is not imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from profilis._http import HttpTiming
from profilis.asgi import ProfilisASGI, RouteResolver
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter

__all__ = ["instrument_fastapi"]


class _MiddlewareHost(Protocol):
    """What we need of a FastAPI or Starlette app."""

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...


def instrument_fastapi(
    app: _MiddlewareHost,
    emitter: Emitter | None = None,
    *,
    collector: AsyncCollector[dict[str, Any]] | None = None,
    sample: float = 1.0,
    exclude_routes: Iterable[str] = (),
    route_resolver: RouteResolver | None = None,
) -> None:
    """Record one HTTP event per request of ``app``, labelled with the matched route.

    Call before the app starts serving (Starlette refuses middleware added later).
    """
    timing = HttpTiming(
        emitter=emitter, collector=collector, sample=sample, exclude_routes=exclude_routes
    )
    app.add_middleware(
        ProfilisASGI,
        emitter=timing.emitter,
        sample=timing.sample,
        exclude_routes=timing.exclude_routes,
        route_resolver=route_resolver,
    )
