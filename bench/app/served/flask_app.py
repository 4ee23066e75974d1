"""The Flask app every gunicorn stack of bench/app serves: a plain route, a parametrised one
and one running a SQLite query through SQLAlchemy (the database is BENCH_APP_DB).

Loaded by each variant's own interpreter with this folder on PYTHONPATH; the variants that
need code in the app (Profilis 1.0, prometheus_flask_exporter) wrap it in their own module.
"""

import os

from flask import Flask, Response, jsonify
from sqlalchemy import create_engine, text

engine = create_engine(f"sqlite:///{os.environ['BENCH_APP_DB']}")
app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "ok"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    return jsonify(id=item_id)


@app.get("/users/<int:user_id>")
def user(user_id: int) -> Response:
    with engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).one()
    return jsonify(id=user_id, name=name[0])
