"""``instrument_fastapi``: adds ``profilis.asgi.ProfilisASGI`` to a FastAPI (or Starlette) app.

A convenience over ``app.add_middleware(ProfilisASGI, ...)`` that checks the settings at once:
Starlette builds its middleware only when the app first runs, which would report a bad
``sample`` at the first request instead of at start-up. FastAPI itself is not imported.
The Profilis 1.x call, ``instrument_fastapi(app, emitter, ASGIConfig(...), route_excludes=)``,
still works and warns (see docs/migration.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Protocol

from profilis._compat import deprecated_getattr, warn_deprecated
from profilis._http import HttpTiming
from profilis.asgi import ProfilisASGI, RouteResolver, _v1
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter

__all__ = ["instrument_fastapi"]


class _MiddlewareHost(Protocol):
    """What we need of a FastAPI or Starlette app."""

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...


def instrument_fastapi(
    app: _MiddlewareHost,
    emitter: Emitter | None = None,
    config: _v1.ASGIConfig | None = None,
    *,
    collector: AsyncCollector[dict[str, Any]] | None = None,
    sample: float | None = None,
    exclude_routes: Iterable[str] | None = None,
    route_resolver: RouteResolver | None = None,
    route_excludes: Iterable[str] | None = None,
) -> None:
    """Record one HTTP event per request of ``app``, labelled with the matched route.

    Call before the app starts serving (Starlette refuses middleware added later).
    ``config`` (a 1.x ``ASGIConfig``) and ``route_excludes`` are the deprecated 1.x spellings
    of ``sample=`` and ``exclude_routes=``.
    """
    if route_excludes is not None:
        warn_deprecated("instrument_fastapi(route_excludes=)", "exclude_routes=")
        exclude_routes = (*(exclude_routes or ()), *route_excludes)
    if config is not None:
        warn_deprecated(
            "instrument_fastapi(app, emitter, ASGIConfig(...))", "sample= and exclude_routes="
        )
        if not isinstance(config, _v1.ASGIConfig):
            raise TypeError(f"config must be an ASGIConfig, got {type(config).__name__}")
        merged = _v1.ASGIConfig(
            sampling_rate=config.sampling_rate * (1.0 if sample is None else sample),
            route_excludes=[*config.route_excludes, *(exclude_routes or ())],
            route_overrides=config.route_overrides,
            always_sample_errors=config.always_sample_errors,
            random_seed=config.random_seed,
            rng=config.rng,
        )
        kwargs = merged.as_profilis_asgi_kwargs()
        if kwargs is None:
            # Only the 1.x middleware does what this config asks; it has no route_resolver.
            if route_resolver is not None:
                raise TypeError("route_resolver= cannot be combined with this ASGIConfig")
            timing_emitter = HttpTiming(emitter=emitter, collector=collector).emitter
            app.add_middleware(_v1.ProfilisASGIMiddleware, emitter=timing_emitter, config=merged)
            return
        sample, exclude_routes = kwargs["sample"], kwargs["exclude_routes"]
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


_V1_NAMES: Final = {
    "ASGIConfig": (lambda: _v1.ASGIConfig, "profilis.asgi.ProfilisASGI(sample=, exclude_routes=)"),
    "ProfilisASGIMiddleware": (lambda: _v1.ProfilisASGIMiddleware, "profilis.asgi.ProfilisASGI"),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)
