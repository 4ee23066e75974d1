"""A small Flask app for the Profilis demo and the kind end-to-end suite.

Plain Flask, no Profilis import: the operator's webhook injects the agent (PYTHONPATH and a
sitecustomize) and the sidecar when the Deployment is annotated profilis.io/inject=true.
Served by gunicorn with several workers (see Dockerfile), as a real deployment would be.
"""

from __future__ import annotations

import time

from flask import Flask, abort

app = Flask(__name__)
ORDERS = {1: "coffee", 2: "tea", 3: "cake"}


@app.get("/")
def index() -> dict[str, object]:
    return {"service": "demo", "orders": sorted(ORDERS)}


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> dict[str, object]:
    time.sleep(0.002)  # a little work, so the latency histogram has something to show
    if order_id not in ORDERS:
        abort(404)
    return {"id": order_id, "item": ORDERS[order_id]}


@app.get("/healthz")
def healthz() -> str:
    return "ok"
