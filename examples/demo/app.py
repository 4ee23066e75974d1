"""The demo shop: a plain Flask + SQLAlchemy service, served by gunicorn with 4 workers.

HTTP requests and SQL queries need no code: the operator's injection (agent on PYTHONPATH,
sidecar beside it) times them, in `make demo` (``demo/``) as on a real cluster. Function
timings are the one thing the agent cannot guess: which of your functions matter. So the
shop marks three with ``@timed`` (pricing, the revenue report, the payment call), Profilis'
``profile`` decorator bound to the injected agent's emitter; where the agent is absent or
off (image run on its own, ``profilis.io/inject: "false"``), ``timed`` leaves them as they
are and the shop runs the same. The routes give the dashboards something of every kind:
reads, writes, a slow report query and a payment call that fails now and then. The database
is a SQLite file (``SHOP_DB``), created on first use by whichever worker gets there first.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, abort, request
from sqlalchemy import Connection, create_engine, text

F = TypeVar("F", bound=Callable[..., Any])


def _untimed(func: F) -> F:
    return func


def _function_timer() -> Callable[[F], F]:
    """``profilis.profile`` on the injected agent's emitter, or a decorator that does nothing."""
    try:
        from profilis import profile
        from profilis.agent import current_agent
    except ImportError:  # not injected: Profilis is not in the image
        return _untimed
    agent = current_agent()
    emitter = agent.emitter() if agent is not None else None
    if emitter is None:  # the agent is off (PROFILIS_ENABLED=false, or a bad setting)
        return _untimed
    return cast(Callable[[F], F], profile(emitter))


timed = _function_timer()

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
PRICES = {"coffee": 3.2, "tea": 2.8, "cake": 4.5}
VAT = 0.2


def _order(row: Any) -> dict[str, Any]:
    return {"id": row.id, "item": row.item, "quantity": row.quantity, "total": row.total}


@timed
def price_order(item: str, quantity: int) -> float:
    """The order's total: unit price, a volume discount from 10 items, VAT."""
    net = PRICES.get(item, 5.0) * quantity * (0.9 if quantity >= 10 else 1.0)
    return round(net * (1 + VAT), 2)


@timed
def compute_revenue(conn: Connection) -> int:
    # Deliberately slow: a recursive query that walks ~200k rows, as an unindexed report does.
    total: int = conn.execute(
        text(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)"
            " SELECT SUM(x % 97) FROM n"
        )
    ).scalar_one()
    return total


@timed
def charge_card() -> str:
    """The payment provider's call; it fails now and then (the 5xx of ``POST /payments``)."""
    time.sleep(random.uniform(0.005, 0.03))  # the provider's round trip
    if random.random() < PAYMENT_FAILURE_RATE:
        raise RuntimeError("payment provider unavailable")
    return "paid"


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
    item, quantity = str(body.get("item", "coffee")), int(body.get("quantity", 1))
    with engine.begin() as conn:
        order_id = conn.execute(
            text("INSERT INTO orders (item, quantity, total) VALUES (:item, :qty, :total)"),
            {"item": item, "qty": quantity, "total": price_order(item, quantity)},
        ).lastrowid
    return {"id": order_id}, 201


@app.get("/reports/revenue")
def revenue_report() -> dict[str, Any]:
    with engine.connect() as conn:
        return {"revenue": compute_revenue(conn)}


@app.post("/payments")
def pay() -> dict[str, Any]:
    return {"status": charge_card()}


@app.get("/healthz")
def healthz() -> str:
    return "ok"
