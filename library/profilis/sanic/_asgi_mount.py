"""Serving an ASGI app under a Sanic path: what ``instrument_sanic_app(mount_asgi_app=...)`` does.

Sanic's own server is not ASGI, so each request under the mount path is turned into one ASGI
``http`` call (``root_path`` is the mount path, ``path`` the full path, as Starlette's Mount
does) and the app's buffered answer into a Sanic response. Meant for small apps like the
dashboard (``profilis.ui.make_ui_asgi_app``), not for streaming.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import HTTPResponse

from profilis.errors import ConfigError

__all__ = ["mount_asgi"]

Message = MutableMapping[str, Any]
AsgiApp = Callable[..., Awaitable[None]]

_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Headers Sanic writes itself from the response it sends.
_HOP_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def mount_asgi(app: Sanic[Any, Any], asgi_app: AsgiApp, mount_path: str) -> None:
    """Route ``mount_path`` and everything under it to ``asgi_app``."""
    if not callable(asgi_app):
        raise TypeError(f"mount_asgi_app must be an ASGI callable, got {asgi_app!r}")
    if not isinstance(mount_path, str) or not mount_path.startswith("/"):
        raise ConfigError("mount_path", "a path starting with '/'", mount_path)
    prefix = mount_path.rstrip("/")

    async def handler(request: Request, subpath: str = "") -> HTTPResponse:
        return await _call(asgi_app, request, prefix)

    name = "profilis_asgi_mount" + prefix.replace("/", "_")
    app.add_route(handler, prefix or "/", methods=_METHODS, name=name, strict_slashes=False)
    app.add_route(handler, prefix + "/<subpath:path>", methods=_METHODS, name=name + "_sub")


async def _call(asgi_app: AsgiApp, request: Request, root_path: str) -> HTTPResponse:
    body = request.body or b""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version,
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode("utf-8"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": root_path,
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ],
        "client": (request.ip, request.port) if request.ip else None,
        "server": None,
    }
    sent_request = False
    status = 500
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_request
        if sent_request:  # the body was all given: the client is "gone" from here on
            return {"type": "http.disconnect"}
        sent_request = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for name, value in message.get("headers") or ():
                if name.lower() not in _HOP_HEADERS:
                    headers.append((name.decode("latin-1"), value.decode("latin-1")))
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body") or b""))

    await asgi_app(scope, receive, send)
    # content_type=None: the app's own Content-Type header (if any) is the one sent.
    return HTTPResponse(b"".join(chunks), status=status, headers=Header(headers), content_type=None)
