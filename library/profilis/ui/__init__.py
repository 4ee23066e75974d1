"""The built-in dashboard: one HTML page and ``metrics.json`` over a ``StatsStore``.

Mount it in a Flask app (``profilis.flask.ui.make_ui_blueprint``), in a Starlette or
FastAPI app (``make_ui_asgi_app``), or let the sidecar serve it for the whole pod at
``/_profilis``. The page polls ``metrics.json`` (shape: docs/ui.md) and draws its charts
with inline SVG: no CDN, it works offline. An optional token is accepted as
``Authorization: Bearer``, ``X-Profilis-Token`` or ``?token=``; without one the dashboard is
reachable wherever it is mounted, and nowhere else. ``TokenCheck`` is that check alone, for
servers that guard pages of their own with it (the sidecar's status.json). Only the standard
library is imported.
"""

from profilis._compat import deprecated_getattr as _deprecated_getattr
from profilis.ui._auth import TokenCheck
from profilis.ui._dashboard import METRICS_PATH, Dashboard, SnapshotSource, UiResponse
from profilis.ui.asgi import make_ui_asgi_app

__all__ = [
    "METRICS_PATH",
    "Dashboard",
    "SnapshotSource",
    "TokenCheck",
    "UiResponse",
    "make_ui_asgi_app",
]


def _from_v1(name: str) -> object:
    from profilis.ui import _v1

    return getattr(_v1, name)


def _dashboard_html() -> str:
    from profilis.ui._v1 import dashboard_html

    return dashboard_html()


_RECENT = "the error= of events: StatsStore lists failed requests under errors.recent"
# Profilis 1.x names (deprecated): the recent-errors ring and the page's HTML.
__getattr__ = _deprecated_getattr(
    __name__,
    {
        "ErrorItem": (lambda: _from_v1("ErrorItem"), _RECENT),
        "record_error": (lambda: _from_v1("record_error"), _RECENT),
        "get_error_ring": (lambda: _from_v1("get_error_ring"), _RECENT),
        "DASHBOARD_HTML": (
            lambda: _dashboard_html(),
            "profilis.ui.make_ui_asgi_app or profilis.flask.ui.make_ui_blueprint",
        ),
    },
)
