"""The Profilis 1.0 README and docs examples, run against 2.0.

Each test is one example as a 1.x user wrote it (in this file's words, with the 1.x imports
and calls), and asserts what that user would see: the dashboard showing the requests, the
JSONL file holding the events, the custom exporter receiving them. Where 2.0 deprecates a
call the example makes, the test expects the warning (pytest runs with warnings as errors).
The Flask quick start runs under gunicorn on 127.0.0.1; the others in process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import free_port, run_process

REPO = Path(__file__).resolve().parents[2]


def jsonl_events(directory: Path) -> list[dict[str, Any]]:
    """Every event in the JSONL files (final and active) under ``directory``, headers left out."""
    events = []
    for path in sorted(directory.glob("*.jsonl*")):
        for line in path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                if event.get("kind") != "header":
                    events.append(event)
    return events


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture
def error_ring() -> Iterator[Any]:
    """The 1.x recent-errors ring is process-wide (as in 1.x): empty before and after."""
    from profilis.ui._v1 import get_error_ring

    ring = get_error_ring()
    ring.clear()
    yield ring
    ring.clear()


def asgi_client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


# ---------------------------------------------------------------- Flask quick start
@pytest.mark.slow
def test_flask_quickstart_under_gunicorn_shows_the_requests_and_writes_jsonl(tmp_path):
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn",
        "--workers", "1",
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "2",
        "tests.library.v1_examples.flask_quickstart:app",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(REPO)}
    with (
        run_process(argv, env=env, cwd=tmp_path, port=port, ready_timeout=30),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client,
    ):
        for _ in range(3):
            assert client.get("/api/users").json() == {"users": ["alice", "bob"]}
        assert client.get("/api/fail").status_code == 500
        assert client.get("/health").text == "ok"

        page = client.get("/_profilis")
        assert page.status_code == 200
        assert 'data-metrics-url="/_profilis/metrics.json"' in page.text

        def four_requests() -> dict[str, Any] | None:
            metrics: dict[str, Any] = client.get("/_profilis/metrics.json").json()
            return metrics if metrics["totals"]["http"]["count"] >= 4 else None

        metrics = wait_until(four_requests)
        assert metrics is not None, "the dashboard never showed the four requests"
        # The README excludes /health but not the dashboard, so the page and its polls are
        # counted too (as in 1.x); the one failure is /api/fail.
        http = metrics["totals"]["http"]
        assert http["count"] >= 4
        assert http["errors"] == 1
        assert client.get("/_profilis/errors.json").json() == {"errors": []}

        def app_events() -> list[tuple[str, int]]:
            found = [
                (e["route"], e["status"])
                for e in jsonl_events(tmp_path / "logs")
                if e["kind"] == "REQ" and e["route"].startswith("/api/")
            ]
            return found if len(found) >= 4 else []

        # The sink got 1.x events (v1_events=True): REQ, with the route template.
        assert sorted(wait_until(app_events)) == [("/api/fail", 500)] + [("/api/users", 200)] * 3
    routes = {e.get("route") for e in jsonl_events(tmp_path / "logs")}
    assert "/health" not in routes


# ---------------------------------------------------------------- FastAPI quick start
def test_fastapi_quickstart_serves_the_dashboard_and_writes_jsonl(tmp_path, caplog):
    from fastapi import FastAPI

    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.core.stats import StatsStore
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.fastapi.adapter import instrument_fastapi

    with pytest.deprecated_call(match="make_ui_router is deprecated"):
        from profilis.fastapi.ui import make_ui_router

    stats = StatsStore()
    jsonl = JSONLExporter(dir=tmp_path / "logs", rotate_bytes=1024 * 1024, rotate_secs=3600)

    def sink(batch: list[dict[str, Any]]) -> None:
        jsonl(batch)
        for ev in batch:
            if ev.get("kind") == "HTTP":  # what the 1.x FastAPI middleware emitted
                status = int(ev.get("status", 0) or 0)
                stats.record(int(ev.get("dur_ns", 0) or 0), error=status >= 500)

    collector = AsyncCollector(sink, queue_size=2048, batch_max=128, flush_interval=0.1)
    emitter = Emitter(collector)

    app = FastAPI()
    with pytest.deprecated_call(match="use exclude_routes="):
        instrument_fastapi(app, emitter, route_excludes=["/profilis"])
    app.include_router(make_ui_router(stats, prefix="/profilis"))

    @app.get("/api/users")
    async def get_users() -> dict[str, list[str]]:
        return {"users": ["alice", "bob"]}

    async def visit() -> tuple[str, dict[str, Any]]:
        async with asgi_client(app) as client:
            for _ in range(2):
                assert (await client.get("/api/users")).status_code == 200
            page = (await client.get("/profilis")).text
            with pytest.deprecated_call(match=r"StatsStore\.record\(\) is deprecated"):
                assert collector.flush(timeout=5.0)
            return page, (await client.get("/profilis/metrics.json")).json()

    try:
        page, metrics = asyncio.run(visit())
    finally:
        collector.close(timeout=5.0)
    assert 'data-metrics-url="/profilis/metrics.json"' in page
    assert metrics["totals"]["http"]["count"] == 2
    events = jsonl_events(tmp_path / "logs")
    assert [(e["kind"], e["route"], e["status"]) for e in events] == [
        ("HTTP", "/api/users", 200),
        ("HTTP", "/api/users", 200),
    ]


def test_fastapi_docs_asgi_config_samples_keeps_failures_and_excludes(log_events):
    """docs/adapters/fastapi.md: ``ASGIConfig`` with a rate, regex excludes, an override."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from profilis.fastapi.adapter import instrument_fastapi

    with pytest.deprecated_call():
        from profilis.asgi.middleware import ASGIConfig
    app = FastAPI()
    with pytest.deprecated_call():
        instrument_fastapi(
            app,
            log_events.emitter,
            config=ASGIConfig(
                sampling_rate=0.0,  # the docs say 0.1; 0 makes the outcome certain
                route_excludes=["/profilis", "/health", "re:^/static/"],
                route_overrides=[("/api/critical", 1.0)],
                always_sample_errors=True,
            ),
            route_excludes=["/profilis", "/health"],
        )

    @app.get("/api/critical")
    async def critical() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/other")
    async def other() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"ok": False}, status_code=502)

    @app.get("/static/app.js")
    async def static() -> JSONResponse:
        return JSONResponse({}, status_code=500)

    async def visit() -> None:
        async with asgi_client(app) as client:
            for path in ("/api/critical", "/api/other", "/api/broken", "/static/app.js"):
                await client.get(path)

    asyncio.run(visit())
    assert [(e["route"], e["status"]) for e in log_events.events()] == [
        ("/api/critical", 200),  # its override samples it whatever the rate
        ("/api/broken", 502),  # sampled out, kept as a failure
    ]


def test_fastapi_docs_bearer_token_and_manual_error_recording(log_events, error_ring):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from profilis.core.stats import StatsStore

    with pytest.deprecated_call():
        from profilis.fastapi.ui import ErrorItem, make_ui_router, record_error

    stats = StatsStore()
    app = FastAPI()
    app.include_router(make_ui_router(stats, bearer_token="secret", prefix="/profilis"))

    @app.exception_handler(Exception)
    async def record_exception(request: Request, exc: Exception) -> JSONResponse:
        record_error(
            ErrorItem(
                ts_ns=time.time_ns(),
                route=request.url.path or "-",
                status=500,
                exception_type=type(exc).__name__,
                exception_value=repr(exc),
                traceback="",
            )
        )
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.get("/api/orders/{oid}")
    async def order(oid: int) -> dict[str, int]:
        raise KeyError(oid)

    async def visit() -> list[httpx.Response]:
        auth = {"Authorization": "Bearer secret"}
        async with asgi_client(app) as client:
            return [
                await client.get("/api/orders/7"),
                await client.get("/profilis/metrics.json"),
                await client.get("/profilis/errors.json"),
                await client.get("/profilis/metrics.json", headers=auth),
                await client.get("/profilis/errors.json", headers=auth),
            ]

    failed, no_token, no_token_errors, metrics, errors = asyncio.run(visit())
    assert failed.status_code == 500
    assert (no_token.status_code, no_token_errors.status_code) == (401, 401)
    (item,) = errors.json()["errors"]
    assert (item["route"], item["status"], item["exception_type"]) == (
        "/api/orders/7",
        500,
        "KeyError",
    )
    (row,) = metrics.json()["errors"]["recent"]
    assert (row["name"], row["error"], row["status"]) == ("/api/orders/7", "KeyError", 500)


# ---------------------------------------------------------------- the Flask dashboard docs
def test_flask_ui_docs_token_and_root_prefix(error_ring):
    from flask import Flask

    from profilis.core.stats import StatsStore
    from profilis.flask.ui import make_ui_blueprint

    with pytest.deprecated_call():
        from profilis.flask.ui import ErrorItem, record_error

    app = Flask(__name__)
    stats = StatsStore(window_minutes=15, max_errors=100)
    with pytest.deprecated_call(match=r"bearer_token=\) is deprecated; use ui_auth_token="):
        app.register_blueprint(make_ui_blueprint(stats, bearer_token="t0k", ui_prefix=""))
    record_error(ErrorItem(0, "/pay", 503, None, "", ""))
    client = app.test_client()
    assert client.get("/metrics.json").status_code == 401
    auth = {"Authorization": "Bearer t0k"}
    assert client.get("/", headers=auth).status_code == 200
    assert client.get("/errors.json", headers=auth).json["errors"][0]["route"] == "/pay"
    (row,) = client.get("/metrics.json", headers=auth).json["errors"]["recent"]
    assert (row["name"], row["error"]) == ("/pay", "HTTP 503")
    assert client.get("/anything-else").status_code == 404  # the root blueprint is not a catch-all


# ---------------------------------------------------------------- the core examples
@pytest.fixture
def log_events() -> Iterator[Any]:
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter

    class Log:
        def __init__(self) -> None:
            self.delivered: list[dict[str, Any]] = []
            self.collector = AsyncCollector(
                self.delivered.extend, flush_interval=0.01, v1_events=False
            )
            self.emitter = Emitter(self.collector)

        def events(self) -> list[dict[str, Any]]:
            assert self.collector.flush(timeout=5.0)
            return list(self.delivered)

    log = Log()
    yield log
    log.collector.close(timeout=5.0)


def test_function_profiling_prints_each_call(capsys):
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.decorators.profile import profile_function
    from profilis.exporters.console import ConsoleExporter

    exporter = ConsoleExporter(pretty=True)
    collector = AsyncCollector(exporter, queue_size=128, flush_interval=0.2)
    emitter = Emitter(collector)

    @profile_function(emitter)
    def expensive_calculation(n: int) -> int:
        return sum(i * i for i in range(n))

    @profile_function(emitter)
    async def async_operation(data: list[int]) -> list[int]:
        return [item * 2 for item in data]

    assert expensive_calculation(1000) == 332833500
    assert asyncio.run(async_operation([1, 2])) == [2, 4]
    collector.close(timeout=5.0)
    # 2.0's pretty console is one line per event: time, kind, duration, function, trace.
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(" FN " in line for line in lines)
    assert lines[0].split()[-2].endswith("expensive_calculation")
    assert "async_operation" in lines[1]


def test_manual_emission_writes_the_three_events_in_one_trace(tmp_path):
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.runtime import span_id, use_span

    exporter = JSONLExporter(dir=tmp_path / "logs")
    collector = AsyncCollector(exporter)
    emitter = Emitter(collector)
    with use_span(trace_id=span_id()):
        emitter.emit_req("/api/custom", 200, dur_ns=15000000)
        emitter.emit_fn("custom_function", dur_ns=5000000)
        emitter.emit_db("SELECT * FROM users", dur_ns=8000000, rows=100)
    collector.close()

    http, fn, db = jsonl_events(tmp_path / "logs")
    assert (http["kind"], http["route"], http["status"], http["dur_ns"]) == (
        "HTTP", "/api/custom", 200, 15000000,
    )  # fmt: skip
    assert (fn["kind"], fn["fn"], fn["dur_ns"]) == ("FN", "custom_function", 5000000)
    assert "error" not in fn  # 1.x's error=False default: no failure
    assert (db["kind"], db["query"], db["rows"]) == ("DB", "SELECT * FROM users", 100)
    assert len({http["trace_id"], fn["trace_id"], db["trace_id"]}) == 1


def test_a_custom_exporter_from_base_exporter_receives_the_events(capsys):
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.exporters.base import BaseExporter

    class CustomExporter(BaseExporter):
        def export(self, events: list[dict[str, Any]]) -> None:
            for event in events:
                print(f"Custom export: {event}")

    exporter = CustomExporter()
    collector = AsyncCollector(exporter)
    Emitter(collector).emit_fn("report", dur_ns=1000)
    collector.close(timeout=5.0)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Custom export: {") and "'fn': 'report'" in line


def test_runtime_context_nests_spans_in_one_trace():
    from profilis.runtime import get_span_id, get_trace_id, use_span

    with use_span(trace_id="trace-123", span_id="span-456"):
        assert (get_trace_id(), get_span_id()) == ("trace-123", "span-456")
        with use_span(span_id="span-789"):
            assert (get_span_id(), get_trace_id()) == ("span-789", "trace-123")
        assert get_span_id() == "span-456"
    assert get_trace_id() is None


@pytest.mark.parametrize(
    "settings",
    [
        {"queue_size": 8192, "batch_max": 256, "flush_interval": 0.05, "drop_oldest": True},
        {"queue_size": 512, "batch_max": 32, "flush_interval": 0.01, "drop_oldest": False},
    ],
    ids=["high-throughput", "low-latency"],
)
def test_performance_tuning_settings_are_accepted_and_deliver(settings):
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter

    delivered: list[dict[str, Any]] = []
    collector = AsyncCollector(delivered.extend, v1_events=False, **settings)
    emitter = Emitter(collector)
    for i in range(500):  # below both queue sizes: nothing may be dropped
        emitter.emit_fn(f"f{i % 3}", dur_ns=i)
    assert collector.flush(timeout=5.0)
    collector.close(timeout=5.0)
    assert len(delivered) == 500
    health = collector.health()
    assert health.queue_capacity == settings["queue_size"]


# ---------------------------------------------------------------- getting started, Prometheus
def test_getting_started_flask_writes_jsonl_and_prometheus_metrics(tmp_path):
    """Getting started's Flask app, with docs/exporters/prometheus.md's Flask quick start."""
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from profilis.core.async_collector import AsyncCollector
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.exporters.prometheus import (
        PrometheusExporter,
        make_metrics_blueprint,
        register_collector_health_metrics,
    )
    from profilis.flask.adapter import ProfilisFlask

    exporter = JSONLExporter(dir=tmp_path / "logs", rotate_bytes=1024 * 1024, rotate_secs=3600)
    registry = CollectorRegistry()
    prom = PrometheusExporter(registry, service="myapp")

    def sink(batch: list[dict[str, Any]]) -> None:  # "composing with other exporters"
        exporter(batch)
        prom(batch)

    collector = AsyncCollector(sink, queue_size=2048, batch_max=128, flush_interval=0.1)
    register_collector_health_metrics(registry, collector)
    app = Flask(__name__)
    ProfilisFlask(app, collector=collector, exclude_routes=["/health", "/metrics"], sample=1.0)
    app.register_blueprint(make_metrics_blueprint(registry))

    @app.route("/api/users")
    def get_users() -> dict[str, list[str]]:
        return {"users": ["alice", "bob"]}

    @app.route("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    client = app.test_client()
    assert client.get("/api/users").json == {"users": ["alice", "bob"]}
    assert client.get("/health").status_code == 200
    assert collector.flush(timeout=5.0)
    metrics = client.get("/metrics").text
    collector.close(timeout=5.0)
    assert 'route="/api/users"' in metrics and 'service="myapp"' in metrics
    assert "profilis_queue_depth" in metrics
    assert [(e["route"], e["status"]) for e in jsonl_events(tmp_path / "logs")] == [
        ("/api/users", 200)
    ]
