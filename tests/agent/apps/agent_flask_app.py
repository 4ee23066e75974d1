"""A Flask app on SQLite as its authors wrote it: no Profilis anywhere, the agent adds it.

Run from a fresh virtualenv (flask, gunicorn, sqlalchemy) with only PYTHONPATH and
PROFILIS_* set. The engine is created at import, so under ``gunicorn --preload`` the master
already holds the agent's collector when it forks its workers.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import create_engine, text

engine = create_engine(f"sqlite:///{os.environ['AGENT_TEST_DB']}")
app = Flask(__name__)


@app.get("/hello")
def hello() -> Any:
    return jsonify(pid=os.getpid())


@app.get("/users/<int:user_id>")
def user(user_id: int) -> Any:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).first()
    return jsonify(pid=os.getpid(), name=None if row is None else row[0])


@app.get("/introspect")
def introspect() -> Any:
    """What this worker process looks like from the inside (the tests read it)."""
    site = sys.modules.get("sitecustomize")
    return jsonify(
        pid=os.getpid(),
        threads=sorted(t.name for t in threading.enumerate()),
        sitecustomize=getattr(site, "__file__", None),
        app_sitecustomize_pid=getattr(site, "RAN_IN_PID", None),
    )
