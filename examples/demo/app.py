"""The demo shop: a plain Flask + SQLAlchemy service, served by gunicorn with 4 workers.

No Profilis import on purpose: `make demo` (``demo/``) and a real cluster instrument it the
same way, through the operator's injection (agent on PYTHONPATH, sidecar beside it). The
routes give the dashboards something of every kind: reads, writes, a slow report query and
a payment call that fails now and then. The database is a SQLite file (``SHOP_DB``), created
on first use by whichever worker gets there first.
"""

from __future__ import annotations

import os
import random
from typing import Any

from flask import Flask, abort, request
from sqlalchemy import create_engine, text

# A busy timeout: four worker processes write to one SQLite file.
engine = create_engine(
    f"sqlite:///{os.environ.get('SHOP_DB', '/tmp/shop.sqlite')}",
    connect_args={"timeout": 15},
)
with engine.begin() as conn:
    conn.execute(text("PRAGMA journal_mode=WAL"))
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL,"
            " quantity INTEGER NOT NULL, total REAL NOT NULL)"
        )
    )
    if conn.execute(text("SELECT COUNT(*) FROM orders")).scalar_one() == 0:
        conn.execute(
            text("INSERT INTO orders (item, quantity, total) VALUES (:item, :qty, :total)"),
            [{"item": f"item-{n}", "qty": n % 5 + 1, "total": 4.5 * n} for n in range(1, 101)],
        )

app = Flask(__name__)
# The payment provider's failure rate: the 5xx the error panels and alerts show.
PAYMENT_FAILURE_RATE = float(os.environ.get("SHOP_PAYMENT_FAILURE_RATE", "0.3"))


def _order(row: Any) -> dict[str, Any]:
    return {"id": row.id, "item": row.item, "quantity": row.quantity, "total": row.total}


@app.get("/orders")
def list_orders() -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM orders ORDER BY id DESC LIMIT 20")).all()
    return {"orders": [_order(row) for row in rows]}


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM orders WHERE id = :id"), {"id": order_id}).first()
    if row is None:
        abort(404)
    return _order(row)


@app.post("/orders")
def create_order() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True) or {}
    quantity = int(body.get("quantity", 1))
    with engine.begin() as conn:
        order_id = conn.execute(
            text("INSERT INTO orders (item, quantity, total) VALUES (:item, :qty, :total)"),
            {"item": str(body.get("item", "coffee")), "qty": quantity, "total": 3.2 * quantity},
        ).lastrowid
    return {"id": order_id}, 201


@app.get("/reports/revenue")
def revenue_report() -> dict[str, Any]:
    # Deliberately slow: a recursive query that walks ~200k rows, as an unindexed report does.
    with engine.connect() as conn:
        total = conn.execute(
            text(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)"
                " SELECT SUM(x % 97) FROM n"
            )
        ).scalar_one()
    return {"revenue": total}


@app.post("/payments")
def pay() -> dict[str, Any]:
    if random.random() < PAYMENT_FAILURE_RATE:
        raise RuntimeError("payment provider unavailable")
    return {"status": "paid"}


@app.get("/healthz")
def healthz() -> str:
    return "ok"
