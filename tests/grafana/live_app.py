"""A small shop served by gunicorn workers for test_live.py: HTTP, function and DB events.

Each worker builds its own collector after gunicorn forks it (no --preload) and ships its
batches to the sidecar at PROFILIS_COLLECTOR_ADDRESS with the library's collector exporter,
as an injected agent would. PROFILIS_TEST_DB is a SQLite file the app creates.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify
from sqlalchemy import create_engine, text

from profilis import AsyncCollector, Emitter, profile
from profilis.exporters.collector import CollectorExporter
from profilis.flask.adapter import ProfilisFlask
from profilis.sqlalchemy import instrument_engine

exporter = CollectorExporter(
    os.environ["PROFILIS_COLLECTOR_ADDRESS"], service="shop", heartbeat_interval_s=1.0
)
collector: AsyncCollector[dict[str, Any]] = AsyncCollector(exporter, flush_interval=0.1)
exporter.attach(collector)
emitter = Emitter(collector)

engine = create_engine(f"sqlite:///{os.environ['PROFILIS_TEST_DB']}")
instrument_engine(engine, emitter)
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)"))
    conn.execute(text("INSERT OR IGNORE INTO orders (id, total) VALUES (1, 9.5), (2, 120.0)"))

app = Flask(__name__)
ProfilisFlask(app, collector=collector)


@profile(emitter, name="shop.load_order")
def load_order(order_id: int) -> float | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT total FROM orders WHERE id = :id"), {"id": order_id})
        found = row.first()
    return None if found is None else float(found[0])


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> Any:
    total = load_order(order_id)
    if total is None:
        abort(404)
    return jsonify(id=order_id, total=total)


@app.get("/checkout")
def checkout() -> Any:
    # The payment provider is down: the 5xx the error-ratio panels show.
    raise RuntimeError("payment provider unavailable")
