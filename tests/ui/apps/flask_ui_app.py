"""A Flask app with the dashboard mounted twice: open at /_profilis, with a token at
/_profilis_private. Served by gunicorn in test_servers.py."""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import create_engine, text

from profilis import profile
from profilis.flask.adapter import ProfilisFlask
from profilis.flask.ui import make_ui_blueprint
from profilis.sqlalchemy import instrument_engine
from tests.ui.apps.common import TOKEN, pipeline

stats, collector, emitter = pipeline()
engine = create_engine(f"sqlite:///{os.environ['PROFILIS_TEST_DB']}")
instrument_engine(engine, emitter)

app = Flask(__name__)
ProfilisFlask(app, collector=collector, exclude_routes=["/_profilis", "/health"])
app.register_blueprint(make_ui_blueprint(stats))
app.register_blueprint(
    make_ui_blueprint(
        stats, ui_prefix="/_profilis_private", ui_auth_token=TOKEN, name="profilis_private"
    )
)


@profile(emitter, name="flask_ui_app.load_user")
def load_user(user_id: int) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT name FROM users WHERE id = {user_id}")).first()
    return None if row is None else str(row[0])


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/users/<int:user_id>")
def user(user_id: int) -> ResponseReturnValue:
    return jsonify(id=user_id, name=load_user(user_id))


@app.get("/work/<int:ms>")
def work(ms: int) -> ResponseReturnValue:
    time.sleep(ms / 1000)
    return jsonify(slept_ms=ms)


@app.get("/boom")
def boom() -> str:
    raise ValueError("the view failed")
