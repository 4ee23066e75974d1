"""A real OTLP/HTTP receiver for tests: http.server on 127.0.0.1, decoding with the official
opentelemetry-proto messages, answering with scripted statuses; stoppable and restartable on
the same port (closing kept-alive connections too, as a crashed collector would)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    request: ExportTraceServiceRequest

    @property
    def spans(self) -> list[Span]:
        return [s for rs in self.request.resource_spans for ss in rs.scope_spans for s in ss.spans]


class Receiver:
    """Start with ``start()``; ``answers`` are used in order, then 200 with an empty body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return [span for r in self.received for span in r.spans]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real collectors do

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    answer = receiver.answers.popleft() if receiver.answers else Answer()
                    receiver.received.append(Received(self.path, dict(self.headers), request))
                payload = answer.body
                if answer.status == 200 and not payload:
                    payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):  # the client may have closed it already
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
        self._server = None
