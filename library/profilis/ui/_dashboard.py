"""The dashboard's one request handler, shared by every way of serving it.

``Dashboard.respond`` maps (method, path under the mount point, query, headers) to a
``UiResponse``; the Flask blueprint (``profilis.flask.ui``), the ASGI app (``profilis.ui.asgi``)
and the sidecar's HTTP server only translate their requests and responses. The page, script
and stylesheet are package files under ``static/``, read once; the data comes from
``StatsStore.snapshot()`` as ``metrics.json``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Protocol

from profilis.ui._auth import HeaderGetter, TokenCheck

__all__ = ["METRICS_PATH", "Dashboard", "SnapshotSource", "UiResponse"]

METRICS_PATH: Final = "/metrics.json"
#: Default poll interval of the page, in milliseconds.
REFRESH_MS: Final = 2000

_ASSETS: Final = {
    "/assets/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/assets/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_PAGE_PATHS: Final = frozenset({"", "/", "/index.html"})
_HTML: Final = "text/html; charset=utf-8"
_JSON: Final = "application/json"
_TEXT: Final = "text/plain; charset=utf-8"

# Every response: never cached (the data is live and may be private), never sniffed, never
# framed, and the token a URL may carry never leaks through a Referer header.
_COMMON: Final = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
# Route names, queries and error types are shown as text, never as markup; the policy makes
# sure of it: no inline script, nothing loaded from anywhere but here.
_PAGE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class SnapshotSource(Protocol):
    """What the dashboard reads: ``StatsStore`` or anything with the same ``snapshot``."""

    def snapshot(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class UiResponse:
    """A response for the host server to send as is (``body`` is empty for HEAD)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


class Dashboard:
    """Serves the page, its two assets and ``metrics.json`` for one ``StatsStore``.

    ``auth_token`` (optional) is required on the page and on ``metrics.json``; the assets
    hold no data and are served to anyone who can reach the mount point.
    """

    def __init__(
        self,
        stats: SnapshotSource,
        *,
        auth_token: str | None = None,
        refresh_ms: int = REFRESH_MS,
        title: str = "Profilis",
    ) -> None:
        if not callable(getattr(stats, "snapshot", None)):
            raise TypeError("stats must be a StatsStore (or have a snapshot() method)")
        self.stats = stats
        self._check = None if auth_token is None else TokenCheck(auth_token)
        self._refresh_ms = refresh_ms
        self._title = title

    def respond(
        self,
        method: str,
        path: str,
        *,
        query_string: str = "",
        header: HeaderGetter = lambda name: None,
        base_path: str = "",
    ) -> UiResponse:
        """Answer one request. ``path`` is relative to the mount point (``""``, ``"/"``,
        ``"/metrics.json"``...), ``base_path`` the mount point itself as the browser sees
        it (``"/_profilis"``), so the page can address its data and assets."""
        if method not in ("GET", "HEAD"):
            return _finish(method, 405, _TEXT, b"method not allowed\n", ("Allow", "GET, HEAD"))
        asset = _ASSETS.get(path)
        if asset is not None:
            return _finish(method, 200, asset[1], _asset(asset[0]))
        if path not in _PAGE_PATHS and path != METRICS_PATH:
            return _finish(method, 404, _TEXT, b"not found\n")
        if self._check is not None and not self._check.allows(header, query_string):
            return _finish(
                method,
                401,
                _TEXT,
                b"a valid Profilis dashboard token is required\n",
                ("WWW-Authenticate", 'Bearer realm="profilis"'),
            )
        if path == METRICS_PATH:
            document = self.stats.snapshot()
            body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
            return _finish(method, 200, _JSON, body)
        return _finish(
            method, 200, _HTML, self._page(base_path), ("Content-Security-Policy", _PAGE_POLICY)
        )

    def respond_to(
        self, method: str, target: str, header: HeaderGetter, *, prefix: str = "/_profilis"
    ) -> UiResponse | None:
        """For servers that route by hand (``http.server``, the sidecar): answer the request
        ``target`` (path and query, as in the request line) when it lies under ``prefix``;
        None when it does not, so the server goes on with its own routes."""
        path, _, query = target.partition("?")
        prefix = prefix.rstrip("/")
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        return self.respond(
            method, path[len(prefix) :], query_string=query, header=header, base_path=prefix
        )

    def _page(self, base_path: str) -> bytes:
        base = base_path.rstrip("/")
        values = {
            "{{BASE}}": html.escape(base, quote=True),
            "{{METRICS_URL}}": html.escape(base + METRICS_PATH, quote=True),
            "{{REFRESH_MS}}": str(int(self._refresh_ms)),
            "{{TITLE}}": html.escape(self._title),
        }
        page = _asset("index.html").decode()
        for placeholder, value in values.items():
            page = page.replace(placeholder, value)
        return page.encode()


def _finish(
    method: str, status: int, content_type: str, body: bytes, *extra: tuple[str, str]
) -> UiResponse:
    headers = (
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        *_COMMON,
        *extra,
    )
    return UiResponse(status, headers, b"" if method == "HEAD" else body)


@cache
def _asset(name: str) -> bytes:
    """A file of ``static/``, read once per process."""
    return (resources.files("profilis.ui") / "static" / name).read_bytes()
