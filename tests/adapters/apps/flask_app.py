"""The Flask app of the gunicorn tests: ProfilisFlask, a SQLite database, streaming views.

Configured by environment: ``PROFILIS_TEST_EVENTS_DIR`` (where the sink writes),
``PROFILIS_TEST_FLAGS_DIR`` (files the test creates to let a stream go on) and
``PROFILIS_TEST_DB`` (a SQLite file whose ``users`` table the test created).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context
from sqlalchemy import create_engine, text

from profilis import AsyncCollector, Emitter, profile
from profilis.flask.adapter import ProfilisFlask
from profilis.sqlalchemy import instrument_engine
from tests.adapters.apps.sink import JsonLinesSink, wait_for_flag

FLAGS_DIR = os.environ["PROFILIS_TEST_FLAGS_DIR"]

collector: AsyncCollector[dict[str, object]] = AsyncCollector(
    JsonLinesSink(os.environ["PROFILIS_TEST_EVENTS_DIR"]), flush_interval=0.02
)
emitter = Emitter(collector)
engine = create_engine(f"sqlite:///{os.environ['PROFILIS_TEST_DB']}")
instrument_engine(engine, emitter)

app = Flask(__name__)
ProfilisFlask(app, collector=collector, exclude_routes=["/health"])


@profile(emitter, name="flask_app.load_user")
def load_user(user_id: int) -> str | None:
    with engine.connect() as conn:
        # A literal in the SQL text on purpose: the DB event must show it redacted.
        row = conn.execute(text(f"SELECT name FROM users WHERE id = {user_id}")).first()
    return None if row is None else str(row[0])


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/pid")
def pid() -> str:
    return str(os.getpid())


@app.get("/users/<int:user_id>")
def user(user_id: int) -> Response:
    return jsonify(id=user_id, name=load_user(user_id), pid=os.getpid())


@app.get("/boom")
def boom() -> str:
    raise ValueError("the view failed")


@app.post("/upload")
def upload() -> Response:
    body = request.get_data()
    return jsonify(size=len(body), sha256=hashlib.sha256(body).hexdigest())


@app.get("/stream/<name>")
def stream(name: str) -> Response:
    def generate() -> Iterator[str]:
        yield f"first {os.getpid()}\n"
        yield "second\n" if wait_for_flag(FLAGS_DIR, name) else "timed out\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/sse/<name>")
def sse(name: str) -> Response:
    def generate() -> Iterator[str]:
        yield "event: tick\ndata: one\n\n"
        yield "data: two\n\n" if wait_for_flag(FLAGS_DIR, name) else "data: timed out\n\n"

    return Response(generate(), mimetype="text/event-stream")
