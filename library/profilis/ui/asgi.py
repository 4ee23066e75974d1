"""The dashboard as a plain ASGI app, for Starlette and FastAPI (or any ASGI server).

``app.mount("/_profilis", make_ui_asgi_app(stats))``: the mount prefix arrives as the
scope's ``root_path``, so the page finds its data wherever it is mounted. The handling
itself is ``Dashboard.respond``; the snapshot runs in a worker thread so the event loop
never waits for it. No framework is imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from profilis.ui._dashboard import Dashboard, SnapshotSource, UiResponse

__all__ = ["make_ui_asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def make_ui_asgi_app(stats: SnapshotSource, ui_auth_token: str | None = None) -> ASGIApp:
    """An ASGI app serving the dashboard of ``stats`` (a ``StatsStore``).

    Mount it where only the people who should see it can reach it; with ``ui_auth_token``
    every page and ``metrics.json`` request must carry the token (see ``profilis.ui``).
    Exclude the mount prefix from ``ProfilisASGI`` (``exclude_routes=["/_profilis"]``),
    or the dashboard's own polling shows up among the routes.
    """
    dashboard = Dashboard(stats, auth_token=ui_auth_token)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own, by uvicorn for instance
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        root_path = scope.get("root_path", "")
        path = scope.get("path", "/")
        # Starlette's Mount keeps the full path and moves the prefix to root_path (older
        # versions cut it from the path): either way, our part is what follows root_path.
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers") or ()
        }
        query = scope.get("query_string", b"").decode("latin-1")
        response: UiResponse = await asyncio.to_thread(
            dashboard.respond,
            scope.get("method", "GET"),
            path,
            query_string=query,
            header=lambda name: headers.get(name.lower()),
            base_path=root_path,
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in response.headers],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
