"""profilis.sanic: Sanic requests through the shared timing core, and the dashboard blueprint.

The app of ``apps/sanic_app.py`` runs under Sanic's own server (one process, 127.0.0.1) and is
talked to over HTTP; the settings tests build small apps served the same way in-process.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

from profilis import AsyncCollector, Emitter, profile
from profilis.core.stats import StatsStore
from profilis.errors import ConfigError
from profilis.runtime import get_trace_id
from profilis.sanic.adapter import SanicConfig, instrument_sanic_app
from profilis.sanic.ui import make_ui_blueprint
from tests.adapters.apps.sink import wait_for_events
from tests.adapters.conftest import EventLog
from tests.adapters.servers import CLIENT_TIMEOUT_S, Server, new_traceparent, serve
from tests.support.processes import free_port


def sanic_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "sanic", "tests.adapters.apps.sanic_app:app",
        "--host", "127.0.0.1", "--port", str(port),
        "--single-process", "--no-access-logs",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not _sqlite_odbc_driver():
        pytest.skip("the SQLite ODBC driver is not installed (Debian: libsqliteodbc)")
    with serve(tmp_path_factory.mktemp("sanic"), sanic_argv) as running:
        yield running


def _sqlite_odbc_driver() -> bool:
    pyodbc = pytest.importorskip("pyodbc")
    return "SQLite3" in pyodbc.drivers()


def get(server: Server, path: str, **kwargs: Any) -> tuple[httpx.Response, str, str]:
    header, trace_id, caller_span = new_traceparent()
    headers = {"traceparent": header, **kwargs.pop("headers", {})}
    response = httpx.request(
        kwargs.pop("method", "GET"),
        server.url + path,
        headers=headers,
        timeout=CLIENT_TIMEOUT_S,
        **kwargs,
    )
    return response, trace_id, caller_span


# ---------------------------------------------------------------- under Sanic's own server


def test_a_request_is_one_http_event_labelled_with_the_route_template(server: Server) -> None:
    response, trace_id, caller_span = get(server, "/users/7")
    assert response.json() == {"id": 7, "name": "grace"}
    events = server.events_of(trace_id, count=2)
    http = next(e for e in events if e["kind"] == "HTTP")
    assert http["route"] == "/users/<user_id:int>"
    assert (http["method"], http["status"]) == ("GET", 200)
    assert http["bytes_out"] == len(response.content)
    assert http["parent_span_id"] == caller_span
    assert "error" not in http


def test_a_query_in_a_handler_joins_the_request_span_with_its_literals_redacted(
    server: Server,
) -> None:
    _, trace_id, _ = get(server, "/users/1")
    events = server.events_of(trace_id, count=2)
    http = next(e for e in events if e["kind"] == "HTTP")
    db = next(e for e in events if e["kind"] == "DB")
    assert db["query"] == "SELECT name FROM users WHERE id = ?"
    assert db["db_vendor"] == "sqlite"
    assert db["span_id"] == http["span_id"]
    assert "error" not in db


def test_an_unmatched_path_is_one_label_not_the_raw_path(server: Server) -> None:
    response, trace_id, _ = get(server, "/no/such/page/12345")
    assert response.status_code == 404
    [event] = server.events_of(trace_id)
    assert (event["route"], event["status"]) == ("<unmatched>", 404)
    assert "error" not in event  # Sanic raises NotFound, but a 404 is no server error


def test_a_failing_handler_is_a_500_that_names_the_exception(server: Server) -> None:
    response, trace_id, _ = get(server, "/boom")
    assert response.status_code == 500
    [event] = server.events_of(trace_id)
    assert (event["route"], event["status"], event["error"]) == ("/boom", 500, "ValueError")


def test_request_and_response_sizes_are_counted(server: Server) -> None:
    response, trace_id, _ = get(server, "/echo", method="POST", content=b"x" * 300)
    assert response.status_code == 201
    [event] = server.events_of(trace_id)
    assert (event["method"], event["bytes_in"], event["bytes_out"]) == ("POST", 300, 300)


def test_excluded_prefixes_are_not_recorded(server: Server) -> None:
    response, trace_id, _ = get(server, "/health")
    assert response.text == "ok"
    _, marker, _ = get(server, "/users/1")  # recorded after /health: the writer has passed it
    server.events_of(marker, count=2)
    assert server.events_of(trace_id, timeout=0.2) == []


def test_requests_on_one_keep_alive_connection_are_separate_traces(server: Server) -> None:
    # Sanic serves a connection's requests in one task: a span left behind by one request
    # would make the next its child. These are the suite's only untraced /users requests.
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/users/7")
            assert connection.getresponse().read()
    finally:
        connection.close()
    untraced = wait_for_events(
        server.events_dir,
        lambda e: e.get("route") == "/users/<user_id:int>" and "parent_span_id" not in e,
        count=3,
    )
    assert len(untraced) == 3
    assert len({e["trace_id"] for e in untraced}) == 3


def test_the_dashboard_blueprint_shows_the_requests(server: Server) -> None:
    get(server, "/users/7")
    _, trace_id, _ = get(server, "/boom")
    server.events_of(trace_id)
    page = httpx.get(server.url + "/_profilis", timeout=CLIENT_TIMEOUT_S)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/_profilis/metrics.json" in page.text
    document = httpx.get(server.url + "/_profilis/metrics.json", timeout=CLIENT_TIMEOUT_S).json()
    routes = {row["route"]: row for row in document["routes"]}
    assert routes["/users/<user_id:int>"]["statuses"]["2xx"] >= 1
    assert routes["/boom"]["statuses"]["5xx"] >= 1
    assert not any(route.startswith("/_profilis") for route in routes)
    queries = [row["query"] for row in document["db"]["queries"]]
    assert "SELECT name FROM users WHERE id = ?" in queries


def test_an_asgi_app_mounted_by_instrument_sanic_app_is_served(server: Server) -> None:
    page = httpx.get(server.url + "/asgi-ui/", timeout=CLIENT_TIMEOUT_S)
    assert page.status_code == 200
    assert "/asgi-ui/metrics.json" in page.text
    data = httpx.get(server.url + "/asgi-ui/metrics.json", timeout=CLIENT_TIMEOUT_S)
    assert data.headers["content-type"] == "application/json"
    assert "routes" in data.json()


# ---------------------------------------------------------------- settings, served in-process


@asynccontextmanager
async def served(app: Sanic[Any, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` under Sanic's own HTTP server on 127.0.0.1, in this event loop."""
    port = free_port()
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S
        ) as client:
            yield client
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


@pytest.fixture(autouse=True)
def sanic_test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanic rewrites its request code once per process unless in test mode, and then
    refuses a second app served in the same process."""
    monkeypatch.setattr(Sanic, "test_mode", True)


def new_app(name: str) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(name)

    @app.get("/items/<item_id>")
    async def item(request: Request, item_id: str) -> HTTPResponse:
        return text(get_trace_id() or "")

    @app.get("/fail")
    async def fail(request: Request) -> HTTPResponse:
        raise KeyError("missing")

    return app


def test_the_handler_runs_inside_the_request_span(log: EventLog) -> None:
    app = new_app("span_app")
    instrument_sanic_app(app, log.emitter)

    async def scenario() -> str:
        async with served(app) as client:
            return (await client.get("/items/a")).text

    seen = asyncio.run(scenario())
    assert log.one()["trace_id"] == seen


def test_sample_zero_records_nothing_and_bad_settings_fail_at_once(log: EventLog) -> None:
    app = new_app("sample_app")
    instrument_sanic_app(app, log.emitter, sample=0.0)

    async def scenario() -> None:
        async with served(app) as client:
            assert (await client.get("/items/a")).status_code == 200

    asyncio.run(scenario())
    assert log.events() == []
    with pytest.raises(ConfigError, match="sample"):
        instrument_sanic_app(new_app("bad_sample"), log.emitter, sample=2)
    with pytest.raises(ConfigError, match="exclude_routes"):
        instrument_sanic_app(new_app("bad_excludes"), log.emitter, exclude_routes="/health")
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument_sanic_app(app, log.emitter)


def test_a_1x_sanic_config_still_works_with_a_deprecation_warning(log: EventLog) -> None:
    app = new_app("legacy_app")
    # 1.x policy: nothing sampled, but failures always recorded; regex excludes.
    config = SanicConfig(sampling_rate=0.0, route_excludes=["re:^/items/x"], rng=lambda: 0.5)
    with pytest.warns(DeprecationWarning, match=r"SanicConfig is deprecated; use instrument_"):
        instrument_sanic_app(app, log.emitter, config)

    async def scenario() -> None:
        async with served(app) as client:
            for path in ("/items/a", "/items/xyz", "/fail"):
                await client.get(path)

    asyncio.run(scenario())
    [event] = log.events()
    assert (event["route"], event["status"], event["error"]) == ("/fail", 500, "KeyError")


def profiled_app(name: str, log: EventLog) -> Sanic[Any, Any]:
    """Handlers that call a ``@profile`` function: the FN events a request causes."""
    app: Sanic[Any, Any] = Sanic(name)

    @profile(log.emitter, name="lookup")
    def lookup() -> int:
        return 1

    @app.get("/items/<item_id>")
    async def item(request: Request, item_id: str) -> HTTPResponse:
        return text(str(lookup()))

    @app.get("/fail")
    async def fail(request: Request) -> HTTPResponse:
        lookup()
        raise KeyError("missing")

    return app


def test_a_request_not_recorded_records_nothing_it_causes(log: EventLog) -> None:
    sampled_out = profiled_app("sampled_out_app", log)
    instrument_sanic_app(sampled_out, log.emitter, sample=0.0)
    excluded = profiled_app("excluded_app", log)
    instrument_sanic_app(excluded, log.emitter, exclude_routes=["/items"])
    recorded = profiled_app("recorded_app", log)
    instrument_sanic_app(recorded, log.emitter)

    async def scenario(app: Sanic[Any, Any]) -> None:
        async with served(app) as client:
            assert (await client.get("/items/a")).status_code == 200

    asyncio.run(scenario(sampled_out))
    asyncio.run(scenario(excluded))
    assert log.events() == []
    asyncio.run(scenario(recorded))  # the same handler, recorded: both events, one trace
    http, fn = log.events("HTTP"), log.events("FN")
    assert len(http) == len(fn) == 1
    assert fn[0]["parent_span_id"] == http[0]["span_id"]


def test_a_1x_failure_kept_below_the_rate_records_nothing_it_caused(log: EventLog) -> None:
    app = profiled_app("legacy_failures_app", log)
    with pytest.deprecated_call(match="SanicConfig"):
        instrument_sanic_app(app, log.emitter, SanicConfig(sampling_rate=0.0))

    async def scenario() -> None:
        async with served(app) as client:
            assert (await client.get("/items/a")).status_code == 200
            assert (await client.get("/fail")).status_code == 500

    asyncio.run(scenario())
    [event] = log.events()
    assert (event["kind"], event["route"], event["error"]) == ("HTTP", "/fail", "KeyError")
    assert len(event["trace_id"]) == 32


def test_the_dashboard_blueprint_takes_a_token_and_the_1x_argument_name(tmp_path: Path) -> None:
    stats = StatsStore()
    app = new_app("ui_app")
    app.blueprint(make_ui_blueprint(stats, ui_prefix="/ops", ui_auth_token="s3cret"))
    with pytest.warns(
        DeprecationWarning, match=r"bearer_token=\) is deprecated; use ui_auth_token="
    ):
        legacy = make_ui_blueprint(stats, bearer_token="old", ui_prefix="/old", name="old_ui")
    app.blueprint(legacy)

    async def scenario() -> list[int]:
        async with served(app) as client:
            return [
                (await client.get("/ops/metrics.json")).status_code,
                (await client.get("/ops/metrics.json?token=s3cret")).status_code,
                (await client.get("/old/", headers={"Authorization": "Bearer old"})).status_code,
                (await client.post("/ops/metrics.json?token=s3cret")).status_code,
            ]

    assert asyncio.run(scenario()) == [401, 200, 200, 405]
    with pytest.raises(ConfigError, match="ui_prefix"):
        make_ui_blueprint(stats, ui_prefix="ops")


def test_metrics_json_of_the_blueprint_is_the_stats_snapshot() -> None:
    stats = StatsStore()
    stats([{"kind": "HTTP", "ts_ns": time.time_ns(), "dur_ns": 5_000_000, "method": "GET",
            "route": "/r", "status": 200}])  # fmt: skip
    app = new_app("ui_snapshot")
    app.blueprint(make_ui_blueprint(stats))

    async def scenario() -> dict[str, Any]:
        async with served(app) as client:
            return json.loads((await client.get("/_profilis/metrics.json")).content)

    document = asyncio.run(scenario())
    assert [row["route"] for row in document["routes"]] == ["/r"]


def test_a_dashboard_at_the_root_takes_only_its_own_paths_and_serves_1x_errors() -> None:
    with pytest.deprecated_call(match=r"^profilis\.sanic\.ui\.ErrorItem is deprecated"):
        from profilis.sanic.ui import ErrorItem
    with pytest.deprecated_call(match=r"^profilis\.sanic\.ui\.record_error is deprecated"):
        from profilis.sanic.ui import record_error
    record_error(ErrorItem(time.time_ns(), "/pay", 502, "Timeout", "Timeout()", ""))
    app = new_app("ui_root")
    app.blueprint(make_ui_blueprint(StatsStore(), ui_prefix=""))

    async def scenario() -> list[Any]:
        async with served(app) as client:
            page = await client.get("/")
            errors = (await client.get("/errors.json")).json()["errors"]
            script = await client.get("/assets/dashboard.js")
            app_route = await client.get("/items/a")
            return [page.status_code, "metrics.json" in page.text, errors[-1]["route"],
                    script.status_code, app_route.status_code]  # fmt: skip

    assert asyncio.run(scenario()) == [200, True, "/pay", 200, 200]


def test_the_1x_docs_example_serves_a_dashboard_that_shows_the_requests() -> None:
    # The 1.x Sanic docs, with the StatsStore among the collector's sinks (2.0 feeds the
    # dashboard from the events; in 1.x nothing filled the store in this example).
    stats = StatsStore()
    collector = AsyncCollector([stats], queue_size=2048, batch_max=128, flush_interval=0.1)
    emitter = Emitter(collector)
    app = new_app("docs_app")
    with pytest.deprecated_call(match="SanicConfig"):
        instrument_sanic_app(
            app, emitter, SanicConfig(sampling_rate=1.0, always_sample_errors=True)
        )
    app.blueprint(make_ui_blueprint(stats, ui_prefix="/profilis"))

    async def scenario() -> dict[str, Any]:
        async with served(app) as client:
            for path in ("/items/a", "/items/b", "/fail"):
                await client.get(path)
            assert await asyncio.to_thread(collector.flush, 5.0)
            page = await client.get("/profilis")
            assert page.status_code == 200 and "/profilis/metrics.json" in page.text
            return (await client.get("/profilis/metrics.json")).json()  # type: ignore[no-any-return]

    try:
        document = asyncio.run(scenario())
    finally:
        collector.close(timeout=5.0)
    routes = {row["route"]: row["statuses"] for row in document["routes"]}
    assert routes["/items/<item_id:str>"]["2xx"] == 2
    assert routes["/fail"]["5xx"] == 1
    assert document["errors"]["by_type"] == [{"error": "KeyError", "count": 1}]
