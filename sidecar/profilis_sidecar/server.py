"""The sidecar's HTTP endpoints on the metrics port (``profilis-http``, 9464 by default).

``/metrics``: the registry, in the exposition format the scraper asks for (prometheus_client's
encoder, never hand-written text). ``/healthz``: the process answers. ``/readyz``: the sockets
are bound and the forwarding exporters are healthy (503 with the reasons otherwise).
``/_profilis/``: the pod dashboard (``profilis_sidecar.ui``), with ``/_profilis/status.json``
for the sidecar's own status (pod, workers, counters).
A threaded standard-library server: a scrape never waits for another.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import exposition
from prometheus_client.registry import CollectorRegistry

from profilis.ui import UiResponse

__all__ = ["StatusServer"]

_JSON: Final = "application/json"
#: ``(method, target, header getter) -> response``, or None when the target is not its own.
DashboardRoute = Callable[[str, str, Callable[[str], "str | None"]], "UiResponse | None"]
_TEXT: Final = "text/plain; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A restarted sidecar must be able to bind its port again at once.
    allow_reuse_address = True


class _V6Server(_Server):
    address_family = socket.AF_INET6


class StatusServer:
    """Serves the four endpoints on ``host:port`` from a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        status: Callable[[], Mapping[str, object]],
        readiness: Callable[[], list[str]],
        dashboard: DashboardRoute | None = None,
    ) -> None:
        handler = _handler_class(registry, status, readiness, dashboard)
        server_class = _V6Server if ":" in host else _Server
        self._server = server_class((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="profilis-sidecar-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler_class(
    registry: CollectorRegistry,
    status: Callable[[], Mapping[str, object]],
    readiness: Callable[[], list[str]],
    dashboard: DashboardRoute | None,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "profilis-sidecar"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = exposition.choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, content_type, encoder(registry))
            elif path == "/healthz":
                self._reply(200, _TEXT, b"ok\n")
            elif path == "/readyz":
                problems = readiness()
                body = json.dumps({"ready": not problems, "problems": problems}).encode()
                self._reply(503 if problems else 200, _JSON, body)
            elif path == "/_profilis/status.json" or (dashboard is None and path == "/_profilis"):
                self._reply(200, _JSON, json.dumps(status(), indent=2).encode())
            else:
                reply = None if dashboard is None else dashboard("GET", self.path, self.headers.get)
                if reply is None:
                    self._reply(404, _TEXT, b"not found\n")
                    return
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """No line per request: scrapes come every few seconds, forever."""

    return Handler
