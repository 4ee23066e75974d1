"""A tiny Flask app that ships one HTTP event per request through the collector exporter.

Built at import, which gunicorn does in each worker after it forks (no ``--preload``), so
every worker has its own AsyncCollector, Emitter and CollectorExporter, configured from the
``PROFILIS_*`` environment. It times its own requests rather than use the Flask adapter, so
the sidecar tests depend only on the sidecar's parts.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request

from profilis.config import load_config
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.exporters.collector import CollectorExporter

config = load_config()
exporter = CollectorExporter.from_config(config)
collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
    exporter,
    queue_size=config.queue_size,
    batch_max=config.batch_max,
    flush_interval=config.flush_interval_s,
)
exporter.attach(collector)  # heartbeats start: the worker shows up before its first request
emitter = Emitter(collector)

app = Flask(__name__)


@app.before_request
def start_timer() -> None:
    g.started_ns = time.perf_counter_ns()


@app.after_request
def record(response: Response) -> Response:
    rule = request.url_rule
    emitter.emit_http(
        rule.rule if rule is not None else "<unmatched>",
        response.status_code,
        time.perf_counter_ns() - g.started_ns,
        request.method,
    )
    return response


@app.get("/hello")
def hello() -> str:
    return "hello"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    # The pid tells the test which worker served the request.
    return {"item": item_id, "pid": os.getpid()}
