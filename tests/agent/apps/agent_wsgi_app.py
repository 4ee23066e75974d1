"""A bare WSGI callable, no framework: what gunicorn-level instrumentation is for."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    found = environ.get("PATH_INFO") == "/hello"
    body = json.dumps({"pid": os.getpid()}).encode()
    status = "200 OK" if found else "404 Not Found"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
