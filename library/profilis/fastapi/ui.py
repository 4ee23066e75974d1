"""Profilis 1.x's ``make_ui_router``: the built-in dashboard as a FastAPI router (deprecated).

``app.include_router(make_ui_router(stats, prefix="/profilis"))`` serves the 2.0 dashboard
(``profilis.ui.make_ui_asgi_app``, which 2.0 code mounts directly) plus 1.x's
``errors.json``. FastAPI is imported when the router is made, never at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from profilis._compat import deprecated_getattr
from profilis.asgi import Receive, Scope, Send
from profilis.errors import ConfigError
from profilis.ui import _v1
from profilis.ui._dashboard import SnapshotSource
from profilis.ui.asgi import make_ui_asgi_app

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__: list[str] = []  # only 1.x names live here: see _V1_NAMES


class _RoutedDashboard:
    """The dashboard's ASGI app behind the router's paths. The part of the path before the
    ``{path}`` parameter is given to it as the root path, so the page finds its data."""

    def __init__(self, stats: SnapshotSource, auth_token: str | None) -> None:
        self._app = make_ui_asgi_app(_v1.WithRecordedErrors(stats), auth_token)
        self._errors = _v1.ErrorsDashboard(stats, auth_token=auth_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        path = scope.get("path", "/")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        sub = "/" + scope.get("path_params", {}).get("path", "")
        base = root_path + (path[: -len(sub)] if path.endswith(sub) else path.rstrip("/"))
        if sub != _v1.ERRORS_PATH:
            await self._app({**scope, "root_path": base, "path": base + sub}, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        reply = self._errors.respond(
            scope.get("method", "GET"),
            sub,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            header=lambda name: headers.get(name.lower()),
        )
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


def _make_ui_router(
    stats: SnapshotSource, *, bearer_token: str | None = None, prefix: str = ""
) -> APIRouter:
    """An ``APIRouter`` serving the dashboard of ``stats`` at ``prefix`` (1.x signature)."""
    from fastapi import APIRouter
    from starlette.routing import Route

    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigError("prefix", "a path starting with '/', or '' for the root", prefix)
    prefix = prefix.rstrip("/")
    dashboard = _RoutedDashboard(stats, bearer_token)
    router = APIRouter()
    paths = [f"{prefix}/", f"{prefix}/{{path:path}}"]
    if prefix:  # "/profilis" is the page too, as in 1.x (no redirect)
        paths.insert(0, prefix)
    for path in paths:
        router.routes.append(Route(path, dashboard, methods=["GET"], include_in_schema=False))
    return router


_UI = "profilis.ui.make_ui_asgi_app (app.mount(prefix, make_ui_asgi_app(stats)))"
_RECENT = "the error= of events: StatsStore lists failed requests under errors.recent"
_V1_NAMES: Final = {
    "make_ui_router": (lambda: _make_ui_router, _UI),
    "ErrorItem": (lambda: _v1.ErrorItem, _RECENT),
    "record_error": (lambda: _v1.record_error, _RECENT),
    "get_error_ring": (lambda: _v1.get_error_ring, _RECENT),
    "DASHBOARD_HTML": (_v1.dashboard_html, _UI),
    "StatsStore": (lambda: _stats_store(), "profilis.core.stats.StatsStore"),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)


def _stats_store() -> object:
    from profilis.core.stats import StatsStore

    return StatsStore
