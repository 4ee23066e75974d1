"""The Profilis 1.0 README's Flask quick start, as a 1.x user wrote it.

One line differs from the README: ``v1_events=True``. The README's sink keeps events of
kind ``"REQ"``, which 2.0 names ``"HTTP"``; docs/migration.md tells 1.x sinks to ask for 1.x
events this way. Everything else (``StatsStore.record``, ``make_ui_blueprint``, the JSONL
files under ``./logs``) is the 1.x code. Served by gunicorn in test_v1_examples.py.
"""

from flask import Flask

from profilis.core.async_collector import AsyncCollector
from profilis.core.stats import StatsStore
from profilis.exporters.jsonl import JSONLExporter
from profilis.flask.adapter import ProfilisFlask
from profilis.flask.ui import make_ui_blueprint

stats = StatsStore()
jsonl = JSONLExporter(dir="./logs", rotate_bytes=1024 * 1024, rotate_secs=3600)


def sink(batch: list[dict]) -> None:
    jsonl(batch)
    # The UI's store, fed by hand as in 1.x: request timings and errors.
    for ev in batch:
        if ev.get("kind") == "REQ":
            status = int(ev.get("status", 0) or 0)
            stats.record(int(ev.get("dur_ns", 0) or 0), error=status >= 500)


collector = AsyncCollector(sink, queue_size=2048, batch_max=128, flush_interval=0.1, v1_events=True)

app = Flask(__name__)
ProfilisFlask(app, collector=collector, exclude_routes=["/health", "/metrics"], sample=1.0)
app.register_blueprint(make_ui_blueprint(stats, ui_prefix="/_profilis"))


@app.route("/api/users")
def get_users() -> dict:
    return {"users": ["alice", "bob"]}


@app.route("/health")
def health() -> str:
    return "ok"


@app.route("/api/fail")
def fail() -> dict:
    raise RuntimeError("the database is down")
