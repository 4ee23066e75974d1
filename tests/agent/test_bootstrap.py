"""The bootstrap in a fresh app venv: what it patches, in which order, and how it fails safe.

Each test runs a short script with ``python -c`` in a virtualenv that holds only the app's
dependencies, with the payload on PYTHONPATH (or added by the script, to start the agent
after the app has imported its frameworks). Scripts print one JSON report on their last line.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.agent.support import Venv, build_venv, profilis_lines, read_jsonl_events

# Shared by the scripts: what the process looks like from the inside.
PROBE = """
import json, sys, threading
def patched(method):
    return bool(getattr(method, "__profilis_agent__", False))
def report(**facts):
    threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("profilis"))
    finders = [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path]
    print(json.dumps({"threads": threads, "finders": finders, **facts}))
def flush():
    from profilis.agent import current_agent
    agent = current_agent()
    if agent is not None and agent.collector is not None:
        agent.collector.flush(5.0)
"""

FLASK_AND_SQLALCHEMY = (
    PROBE
    + """
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
import gunicorn.workers.base
app = Flask("probe")
engine = create_engine("sqlite://")
@app.get("/users/<int:user_id>")
def user(user_id):
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT :n"), {"n": user_id}).scalar())
status = app.test_client().get("/users/3").status_code
flush()
report(
    status=status,
    flask=patched(Flask.__call__),
    sqlalchemy=patched(Engine.__init__),
    gunicorn=patched(gunicorn.workers.base.Worker.load_wsgi),
)
"""
)


def run(venv: Venv, code: str, payload: Path | None, **settings: str) -> tuple[dict[str, Any], str]:
    """Run ``code``; return its report and its stderr."""
    env = dict(settings)
    if payload is not None:
        env["PYTHONPATH"] = str(payload)
    done = venv.run(textwrap.dedent(code), env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_disabled_agent_patches_nothing_and_starts_no_thread(
    flask_venv: Venv, payload: Path
) -> None:
    report, stderr = run(flask_venv, FLASK_AND_SQLALCHEMY, payload, PROFILIS_ENABLED="false")

    assert report == {
        "threads": [],
        "finders": ["BuiltinImporter", "FrozenImporter", "PathFinder"],
        "status": 200,
        "flask": False,
        "sqlalchemy": False,
        "gunicorn": False,
    }
    assert stderr == ""


def test_enabled_agent_times_requests_and_their_queries(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    report, stderr = run(
        flask_venv,
        FLASK_AND_SQLALCHEMY,
        payload,
        PROFILIS_EXPORTERS="jsonl",
        PROFILIS_LOG_DIR=str(tmp_path),
    )

    assert report["finders"][0] == "PostImportHooks"
    assert report["threads"] == ["profilis-agent-collector"]
    assert report["flask"] and report["sqlalchemy"] and report["gunicorn"]
    events = read_jsonl_events(tmp_path)
    assert sorted(e["kind"] for e in events) == ["DB", "HTTP"]
    http = next(e for e in events if e["kind"] == "HTTP")
    assert http["route"] == "/users/<int:user_id>"
    assert len({e["trace_id"] for e in events}) == 1
    assert stderr == ""


def test_disabled_instrumentations_are_left_alone(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    report, _ = run(
        flask_venv,
        FLASK_AND_SQLALCHEMY,
        payload,
        PROFILIS_DISABLED_INSTRUMENTATIONS="flask, SQLAlchemy",
        PROFILIS_EXPORTERS="jsonl",
        PROFILIS_LOG_DIR=str(tmp_path),
    )

    assert not report["flask"] and not report["sqlalchemy"]
    assert report["gunicorn"]  # server roles stay: they instrument nothing by themselves
    assert report["threads"] == []  # nothing needed a collector
    assert read_jsonl_events(tmp_path) == []


def test_frameworks_imported_and_apps_built_before_the_agent_starts(
    asgi_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    # The agent comes last here (as if loaded late): classes are patched when it starts, so
    # an app made earlier is still timed from its first call.
    code = (
        f"""
import asyncio, sys
from fastapi import FastAPI
from sqlalchemy import create_engine, text
app = FastAPI()
@app.get("/items/{{item_id}}")
async def item(item_id: int):
    return {{"id": item_id}}
sys.path.insert(0, {str(payload)!r})
from profilis.agent import start
start({{"PROFILIS_EXPORTERS": "jsonl", "PROFILIS_LOG_DIR": {str(tmp_path)!r}}})
engine = create_engine("sqlite://")  # made after: instrumented
with engine.connect() as conn:
    conn.execute(text("SELECT 1"))
async def get(path):
    sent = []
    scope = {{"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "scheme": "http", "server": ("x", 80),
             "client": ("y", 1), "root_path": "", "http_version": "1.1",
             "asgi": {{"version": "3.0"}}}}
    async def receive():
        return {{"type": "http.request", "body": b"", "more_body": False}}
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    return sent[0]["status"]
status = asyncio.run(get("/items/5"))
"""
        + PROBE
        + """
flush()
report(status=status, user_middleware=len(app.user_middleware))
"""
    )
    report, stderr = run(asgi_venv, code, None)

    assert report["status"] == 200
    assert report["user_middleware"] == 0  # the app's own list shows nothing of ours
    events = read_jsonl_events(tmp_path)
    assert sorted((e["kind"], e.get("route")) for e in events) == [
        ("DB", None),
        ("HTTP", "/items/{item_id}"),
    ]
    assert stderr == ""


def test_a_collector_that_cannot_start_is_one_line_and_the_app_serves(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    report, stderr = run(
        flask_venv,
        FLASK_AND_SQLALCHEMY,
        payload,
        PROFILIS_EXPORTERS="jsonl",
        PROFILIS_LOG_DIR=str(blocker / "logs"),
    )

    assert report["status"] == 200
    assert report["threads"] == []
    (line,) = profilis_lines(stderr)
    assert line.startswith(
        "profilis: agent off, the app runs uninstrumented: could not start the collector: "
    )
    assert stderr.strip() == line


def test_sqlalchemy_without_greenlet_is_instrumented(payload: Path, tmp_path: Path) -> None:
    venv = build_venv(tmp_path / "venv", ("sqlalchemy==2.1.9",))
    code = (
        PROBE
        + """
from sqlalchemy import create_engine, text
engine = create_engine("sqlite://")
with engine.connect() as conn:
    conn.execute(text("SELECT 1"))
flush()
report()
"""
    )
    _, stderr = run(
        venv, code, payload, PROFILIS_EXPORTERS="jsonl", PROFILIS_LOG_DIR=str(tmp_path / "ev")
    )

    assert profilis_lines(stderr) == []
    assert [e["kind"] for e in read_jsonl_events(tmp_path / "ev")] == ["DB"]


def test_the_agent_runs_on_the_standard_library_alone(payload: Path, tmp_path: Path) -> None:
    venv = build_venv(tmp_path / "venv", ())  # no packages at all: orjson and the rest absent
    code = (
        PROBE
        + """
from profilis.agent import current_agent
agent = current_agent()
agent.serving()
agent.emitter().emit_fn("job", 1000)
flush()
loaded = {name.split(".")[0] for name in sys.modules}
outside = loaded - set(sys.stdlib_module_names) - {"profilis", "sitecustomize", "__main__"}
report(outside=sorted(name for name in outside if not name.startswith("_virtualenv")))
"""
    )
    report, stderr = run(
        venv,
        code,
        payload,
        PROFILIS_EXPORTERS="collector,jsonl",
        PROFILIS_COLLECTOR_ADDRESS=f"unix://{tmp_path}/no-sidecar.sock",
        PROFILIS_LOG_DIR=str(tmp_path / "events"),
    )

    assert report["outside"] == []
    assert report["threads"] == ["profilis-agent-collector", "profilis-collector-heartbeat"]
    assert [e["fn"] for e in read_jsonl_events(tmp_path / "events")] == ["job"]
    # No sidecar listening: the exporter says so (once a minute at most) and goes on.
    (line,) = profilis_lines(stderr)
    assert line.startswith("profilis: could not send 1 events to the collector")


def test_an_app_that_instruments_itself_is_not_timed_twice(payload: Path, tmp_path: Path) -> None:
    # Our own venv: profilis is installed there, so the payload steps aside for it, and the
    # app uses ProfilisFlask itself; the agent must leave that app alone.
    ours = Venv(Path(sys.executable).parent.parent)
    code = (
        PROBE
        + """
from flask import Flask
from profilis import AsyncCollector
from profilis.flask.adapter import ProfilisFlask
own = []
collector = AsyncCollector(own.extend, flush_interval=0.01)
app = Flask("self-instrumented")
ProfilisFlask(app, collector=collector)
@app.get("/x")
def x():
    return "x"
status = app.test_client().get("/x").status_code
collector.flush(5.0)
flush()
import profilis
report(status=status, own=[e["route"] for e in own], profilis=profilis.__file__)
"""
    )
    report, stderr = run(
        ours, code, payload, PROFILIS_EXPORTERS="jsonl", PROFILIS_LOG_DIR=str(tmp_path)
    )

    assert report["status"] == 200
    assert report["own"] == ["/x"]  # the app's own event, once
    assert not report["profilis"].startswith(str(payload))  # the app's copy, not ours
    assert "profilis-agent-collector" not in report["threads"]  # the agent needed none
    assert read_jsonl_events(tmp_path) == []
    assert stderr == ""
