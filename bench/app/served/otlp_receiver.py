"""A tiny OTLP/HTTP receiver for bench/app's OpenTelemetry variant: accepts every export,
counts the SERVER spans (one per request) and serves the counts as JSON at GET /count.

Run by the OpenTelemetry venv's Python: ``python otlp_receiver.py PORT``.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_lock = threading.Lock()
counts = {"server_spans": 0, "spans": 0, "exports": 0}
_EMPTY = ExportTraceServiceResponse().SerializeToString()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans = [
                span
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            server = sum(1 for span in spans if span.kind == Span.SPAN_KIND_SERVER)
            with _lock:
                counts["spans"] += len(spans)
                counts["server_spans"] += server
                counts["exports"] += 1
        # Metrics and logs are accepted unread; an empty message is a valid answer to each.
        self._reply(200, _EMPTY, "application/x-protobuf")

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(counts).encode()
        self._reply(200, body, "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
