"""``make_ui_blueprint``: the built-in dashboard as a Sanic blueprint.

A thin translation between Sanic's request/response and ``profilis.ui.Dashboard``, which does
the serving (the Flask blueprint, the ASGI app and the sidecar use the same one). Profilis 1.x
spellings still work, as in ``profilis.flask.ui``: ``bearer_token=`` (warns; now
``ui_auth_token=``), ``ui_prefix=""`` (the app's root) and the recent-errors list of
``record_error``, served as ``errors.json`` too.
"""

from __future__ import annotations

import asyncio
from typing import Final

from sanic import Blueprint, Request
from sanic.compat import Header
from sanic.response import HTTPResponse

from profilis._compat import deprecated_getattr
from profilis.ui import _v1
from profilis.ui._dashboard import METRICS_PATH, SnapshotSource

__all__ = ["make_ui_blueprint"]

_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def make_ui_blueprint(
    stats: SnapshotSource,
    *,
    ui_prefix: str = "/_profilis",
    ui_auth_token: str | None = None,
    bearer_token: str | None = None,
    name: str = "profilis_ui",
) -> Blueprint:
    """A blueprint serving the dashboard of ``stats`` (a ``StatsStore``) under ``ui_prefix``.

    ``app.blueprint(make_ui_blueprint(stats, ui_auth_token=token))``. Exclude the prefix from
    ``instrument_sanic_app`` (``exclude_routes=["/_profilis"]``) so the page's own polling is
    not counted among the app's routes. ``bearer_token`` is the 1.x name of
    ``ui_auth_token``; ``name`` must differ per blueprint when one app mounts two dashboards.
    """
    prefix, ui_auth_token = _v1.blueprint_settings(ui_prefix, ui_auth_token, bearer_token)
    dashboard = _v1.ErrorsDashboard(stats, auth_token=ui_auth_token)
    blueprint = Blueprint(name, url_prefix=prefix or None)

    async def serve(request: Request, **match: str) -> HTTPResponse:
        # The snapshot takes the store's lock: never in the event loop's thread.
        reply = await asyncio.to_thread(
            dashboard.respond,
            request.method,
            request.path[len(prefix) :],
            query_string=request.query_string,
            header=request.headers.get,
            base_path=prefix,
        )
        headers = Header([(k, v) for k, v in reply.headers if k != "Content-Length"])
        return HTTPResponse(reply.body, status=reply.status, headers=headers, content_type=None)

    # Every method reaches the dashboard, so its own 405 (with no-store) answers the others.
    # "/_profilis" and "/_profilis/" are both the page.
    if prefix:
        blueprint.add_route(serve, "/", methods=_METHODS, name="page", strict_slashes=False)
        blueprint.add_route(serve, "/<subpath:path>", methods=_METHODS, name="file")
    else:  # at the app's root: only the dashboard's own paths, not every path
        blueprint.add_route(serve, "/", methods=_METHODS, name="page")
        for path in (METRICS_PATH, _v1.ERRORS_PATH):
            blueprint.add_route(serve, path, methods=_METHODS, name=path[1:].replace(".", "_"))
        blueprint.add_route(serve, "/assets/<subpath:path>", methods=_METHODS, name="file")
    return blueprint


_V1_NAMES: Final = {
    **_v1.deprecated_blueprint_names("profilis.sanic.ui.make_ui_blueprint"),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)
