"""``make_ui_blueprint``: the built-in dashboard as a Flask blueprint.

A thin translation between Flask's request/response and ``profilis.ui.Dashboard``, which
does the serving (the ASGI app and the sidecar use the same one). Profilis 1.x spellings
still work: ``bearer_token=`` (warns; now ``ui_auth_token=``), ``ui_prefix=""`` (the app's
root), and the recent-errors list of ``record_error``, served as ``errors.json`` too.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Response, request

from profilis._compat import deprecated_getattr
from profilis.ui import _v1
from profilis.ui._dashboard import SnapshotSource

__all__ = ["make_ui_blueprint"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def make_ui_blueprint(
    stats: SnapshotSource,
    ui_prefix: str = "/_profilis",
    ui_auth_token: str | None = None,
    *,
    name: str = "profilis_ui",
    bearer_token: str | None = None,
) -> Blueprint:
    """A blueprint serving the dashboard of ``stats`` (a ``StatsStore``) under ``ui_prefix``.

    ``app.register_blueprint(make_ui_blueprint(stats, ui_auth_token=token))``. Exclude the
    prefix from ``ProfilisFlask`` (``exclude_routes=["/_profilis"]``) so the page's own
    polling is not counted among the app's routes. ``name`` must differ per blueprint when
    one app mounts two dashboards. ``ui_prefix=""`` serves it at the app's root.
    """
    prefix, ui_auth_token = _v1.blueprint_settings(ui_prefix, ui_auth_token, bearer_token)
    dashboard = _v1.ErrorsDashboard(stats, auth_token=ui_auth_token)
    blueprint = Blueprint(name, __name__, url_prefix=prefix or None)

    def serve(subpath: str = "") -> Response:
        reply = dashboard.respond(
            request.method,
            request.path[len(prefix) :],
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
    if not prefix:  # at the app's root: only the dashboard's own paths, not every path
        rules = [("/", "index"), ("/metrics.json", "metrics"), (_v1.ERRORS_PATH, "errors")]
        rules.append(("/assets/<path:subpath>", "file"))
    for rule, endpoint in rules:
        blueprint.add_url_rule(
            rule, endpoint, serve, methods=_METHODS, provide_automatic_options=False
        )
    return blueprint


_V1_NAMES: Final = {
    **_v1.deprecated_blueprint_names("profilis.flask.ui.make_ui_blueprint"),
    "StatsStore": (lambda: _stats_store(), "profilis.core.stats.StatsStore"),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)


def _stats_store() -> object:
    from profilis.core.stats import StatsStore

    return StatsStore
