"""``make_ui_blueprint``: the built-in dashboard as a Flask blueprint.

A thin translation between Flask's request/response and ``profilis.ui.Dashboard``, which
does the serving (the ASGI app and the sidecar use the same one).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from profilis.errors import ConfigError
from profilis.ui._dashboard import Dashboard, SnapshotSource

__all__ = ["make_ui_blueprint"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def make_ui_blueprint(
    stats: SnapshotSource,
    ui_prefix: str = "/_profilis",
    ui_auth_token: str | None = None,
    *,
    name: str = "profilis_ui",
) -> Blueprint:
    """A blueprint serving the dashboard of ``stats`` (a ``StatsStore``) under ``ui_prefix``.

    ``app.register_blueprint(make_ui_blueprint(stats, ui_auth_token=token))``. Exclude the
    prefix from ``ProfilisFlask`` (``exclude_routes=["/_profilis"]``) so the page's own
    polling is not counted among the app's routes. ``name`` must differ per blueprint when
    one app mounts two dashboards.
    """
    if not isinstance(ui_prefix, str) or not ui_prefix.startswith("/"):
        raise ConfigError("ui_prefix", "a path starting with '/'", ui_prefix)
    prefix = ui_prefix.rstrip("/")
    dashboard = Dashboard(stats, auth_token=ui_auth_token)
    blueprint = Blueprint(name, __name__, url_prefix=prefix or None)

    def serve(subpath: str = "") -> Response:
        reply = dashboard.respond(
            request.method,
            "/" + subpath,
            query_string=request.query_string.decode("latin-1"),
            header=request.headers.get,
            base_path=request.script_root + prefix,
        )
        response = Response(reply.body, status=reply.status)
        # Content-Length included: for HEAD the body is empty but the length is the GET's.
        for key, value in reply.headers:
            response.headers[key] = value
        return response

    # Every method reaches the dashboard, so its own 405 (with no-store) answers the others.
    # Both "/_profilis" and "/_profilis/" are the page (no redirect between them).
    rules = [("", "page"), ("/", "index"), ("/<path:subpath>", "file")]
    for rule, endpoint in rules if prefix else rules[1:]:
        blueprint.add_url_rule(
            rule, endpoint, serve, methods=_METHODS, provide_automatic_options=False
        )
    return blueprint
