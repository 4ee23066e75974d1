"""A Sanic app instrumented as the Profilis docs show, served by Sanic's own server in
test_sanic.py. Its handlers query SQLite through pyodbc (the SQLite ODBC driver), so DB events
must land in the request's trace; the dashboard is mounted twice (blueprint, ASGI mount).
"""

from __future__ import annotations

import os

import pyodbc
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, text

from profilis import AsyncCollector, Emitter
from profilis.core.stats import StatsStore
from profilis.pyodbc.instrumentation import instrument_pyodbc_connection
from profilis.sanic.adapter import instrument_sanic_app
from profilis.sanic.ui import make_ui_blueprint
from profilis.ui import make_ui_asgi_app
from tests.adapters.apps.sink import JsonLinesSink

stats = StatsStore()
collector: AsyncCollector[dict[str, object]] = AsyncCollector(
    [JsonLinesSink(os.environ["PROFILIS_TEST_EVENTS_DIR"]), stats], flush_interval=0.02
)
emitter = Emitter(collector)

app = Sanic("profilis_test_app")
instrument_sanic_app(
    app,
    emitter,
    exclude_routes=["/_profilis", "/asgi-ui", "/health"],
    mount_asgi_app=make_ui_asgi_app(stats),
    mount_path="/asgi-ui",
)
app.blueprint(make_ui_blueprint(stats))

DATABASE = f"DRIVER={{SQLite3}};Database={os.environ['PROFILIS_TEST_DB']}"


def connect() -> pyodbc.Connection:
    return instrument_pyodbc_connection(pyodbc.connect(DATABASE, autocommit=True), emitter)


@app.get("/health")
async def health(request: Request) -> HTTPResponse:
    return text("ok")


@app.get("/users/<user_id:int>")
async def user(request: Request, user_id: int) -> HTTPResponse:
    with connect() as conn:
        row = conn.execute(f"SELECT name FROM users WHERE id = {user_id}").fetchone()
    return json({"id": user_id, "name": None if row is None else row[0]})


@app.post("/echo")
async def echo(request: Request) -> HTTPResponse:
    return text(request.body.decode(), status=201)


@app.get("/boom")
async def boom(request: Request) -> HTTPResponse:
    raise ValueError("the handler failed")
