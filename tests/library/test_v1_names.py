"""Every public name of Profilis 1.0 imports from the same module in 2.0.

``V1_PUBLIC_NAMES`` is the list ``v1_examples/list_public_names.py`` printed for Profilis
1.0.0 (the names each module defines or exports; type variables and stdlib re-exports left
out). A name 2.0 deprecates warns once, naming its replacement; the rest import silently.
The behaviour behind the 1.x-only names (sampling helpers, the 1.x ASGI middleware, the old
keyword arguments) is checked below; the README and docs examples are test_v1_examples.py.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

# module -> the public names Profilis 1.0.0 gives it (refresh with list_public_names.py)
V1_PUBLIC_NAMES: dict[str, list[str]] = {
    "profilis": ["__version__"],
    "profilis.asgi.middleware": [
        "ASGIConfig", "DEFAULT_ERROR_STATUS", "HTTP_ERROR_STATUS_THRESHOLD",
        "ProfilisASGIMiddleware", "RequestInfo",
    ],
    "profilis.core.async_collector": ["AsyncCollector"],
    "profilis.core.emitter": ["Emitter"],
    "profilis.core.stats": ["PERCENT_MAX", "SPARKLINE_BINS", "StatsStore"],
    "profilis.decorators.profile": ["profile_function"],
    "profilis.exporters.console": ["ConsoleExporter"],
    "profilis.exporters.jsonl": ["JSONLExporter"],
    "profilis.exporters.prometheus": [
        "DEFAULT_BUCKETS", "PrometheusExporter", "make_asgi_app", "make_metrics_blueprint",
        "register_collector_health_metrics",
    ],
    "profilis.fastapi.adapter": ["instrument_fastapi"],
    "profilis.fastapi.ui": ["DASHBOARD_HTML", "ErrorItem", "make_ui_router", "record_error"],
    "profilis.flask.adapter": [
        "HTTP_BAD_REQUEST", "HTTP_INTERNAL_SERVER_ERROR", "HTTP_OK", "ProfilisFlask",
    ],
    "profilis.flask.ui": ["DASHBOARD_HTML", "ErrorItem", "make_ui_blueprint", "record_error"],
    "profilis.mongo.instrumentation": ["MongoConfig", "ProfilisCommandListener"],
    "profilis.neo4j.instrumentation": [
        "Neo4jConfig", "instrument_neo4j_module", "instrument_neo4j_session",
    ],
    "profilis.pyodbc.instrumentation": [
        "DBExecutionInfo", "PyODBCConfig", "instrument_pyodbc_connection",
        "instrument_pyodbc_cursor",
    ],
    "profilis.runtime": [
        "get_current_parent_span_id", "get_span_id", "get_trace_id", "now_ns", "reset_span_id",
        "reset_trace_id", "set_span_id", "set_trace_id", "span_id", "use_span",
    ],
    "profilis.runtime.clock": ["now_ns"],
    "profilis.runtime.context": [
        "get_current_parent_span_id", "get_span_id", "get_trace_id", "reset_span_id",
        "reset_trace_id", "set_span_id", "set_trace_id", "use_span",
    ],
    "profilis.runtime.ids": ["span_id"],
    "profilis.sampling": [
        "HTTP_ERROR_STATUS_THRESHOLD", "REGEX_PREFIX", "clamp_sampling_rate",
        "get_effective_rate", "make_rng", "should_exclude_route", "should_record_request",
        "should_sample_request",
    ],
    "profilis.sanic.adapter": ["HTTP_INTERNAL_SERVER_ERROR", "SanicConfig", "instrument_sanic_app"],
    "profilis.sanic.ui": ["DASHBOARD_HTML", "ErrorItem", "make_ui_blueprint", "record_error"],
    "profilis.sqlalchemy.instrumentation": [
        "instrument_async_engine", "instrument_engine", "redact_statement",
    ],
    "profilis.ui": ["DASHBOARD_HTML", "ErrorItem", "get_error_ring", "record_error"],
}  # fmt: skip

# The names 2.0 deprecates: importing one warns "<module>.<name> is deprecated; use ...".
DEPRECATED = {
    "profilis.asgi.middleware": {
        "ASGIConfig", "DEFAULT_ERROR_STATUS", "HTTP_ERROR_STATUS_THRESHOLD",
        "ProfilisASGIMiddleware", "RequestInfo",
    },
    "profilis.core.stats": {"PERCENT_MAX", "SPARKLINE_BINS"},
    "profilis.exporters.prometheus": {"DEFAULT_BUCKETS"},
    "profilis.fastapi.ui": {"DASHBOARD_HTML", "ErrorItem", "make_ui_router", "record_error"},
    "profilis.flask.ui": {"DASHBOARD_HTML", "ErrorItem", "record_error"},
    "profilis.pyodbc.instrumentation": {"DBExecutionInfo"},
    "profilis.sampling": set(V1_PUBLIC_NAMES["profilis.sampling"]),
    "profilis.sanic.ui": {"DASHBOARD_HTML", "ErrorItem", "record_error"},
    "profilis.ui": {"DASHBOARD_HTML", "ErrorItem", "get_error_ring", "record_error"},
}  # fmt: skip

NOT_YET: dict[tuple[str, str], str] = {}  # names 1.0 had that 2.0 does not provide yet


def _cases() -> list[Any]:
    cases = []
    for module, names in V1_PUBLIC_NAMES.items():
        for name in names:
            reason = NOT_YET.get((module, name))
            marks = [pytest.mark.xfail(strict=False, reason=reason)] if reason else []
            cases.append(pytest.param(module, name, marks=marks, id=f"{module}.{name}"))
    return cases


@pytest.mark.parametrize(("module", "name"), _cases())
def test_a_1x_name_imports_from_its_1x_module(module: str, name: str) -> None:
    imported = importlib.import_module(module)
    if name in DEPRECATED.get(module, ()):
        with pytest.deprecated_call(match=rf"^{module}\.{name} is deprecated; use \S"):
            value = getattr(imported, name)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = getattr(imported, name)
    assert value is not None


def test_the_deprecation_points_at_the_line_that_imports_the_name() -> None:
    with pytest.deprecated_call() as caught:
        from profilis.asgi.middleware import ProfilisASGIMiddleware  # noqa: F401
    assert caught[0].filename == __file__


def test_importing_the_1x_modules_alone_does_not_warn() -> None:
    modules = [m for m in V1_PUBLIC_NAMES if not m.startswith(("profilis.sanic", "profilis.mongo"))]
    modules = [m for m in modules if not m.startswith(("profilis.neo4j", "profilis.pyodbc"))]
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code, *modules],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_authoritative_list_matches_what_the_script_prints_for_1x(
    tmp_path: Path, peer_package: Path
) -> None:
    """The list above is exactly what Profilis 1.0 exports, by the script's rules."""
    script = Path(__file__).with_name("v1_examples") / "list_public_names.py"
    (tmp_path / "profilis").symlink_to(peer_package)
    # -I: this interpreter's frameworks, Profilis 1.0 first on the path, no 2.0 in sight.
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = json.loads(done.stdout)["modules"]
    public = {m: [n for n, home in names.items() if home is None] for m, names in listed.items()}
    expected = {
        m: sorted(n for n in names if n != "__version__") for m, names in V1_PUBLIC_NAMES.items()
    }
    assert {m: n for m, n in public.items() if n} == {m: n for m, n in expected.items() if n}


# ---------------------------------------------------------------- what the 1.x names do
SAMPLING_PROBE = """
import json, warnings
warnings.simplefilter("ignore")
from profilis.sampling import (_compile_excludes, _compile_overrides, clamp_sampling_rate,
    get_effective_rate, make_rng, should_exclude_route, should_record_request,
    should_sample_request)
ex = _compile_excludes(["/health", "re:^/api/v[0-9]+/internal", "re:([", ""])
ov = _compile_overrides([("/api/slow", 0.1), ("re:/admin$", 0.0), ("/bad", 2.0)])
paths = ["/health", "/healthz", "/api/v2/internal/x", "/api/v2/public", "re:([x", "/admin",
         "/api/slow/1", "/bad"]
rng = make_rng(random_seed=7)
errors = []
for rate in (2.0, -0.1):
    try:
        clamp_sampling_rate(rate)
    except ValueError:
        errors.append(rate)
print(json.dumps({
    "excluded": [should_exclude_route(p, ex) for p in paths],
    "rates": [get_effective_rate(p, ov, 0.5) for p in paths],
    "draws": [should_sample_request(0.5, rng) for _ in range(20)],
    "edges": [should_sample_request(1.0, lambda: 0.99), should_sample_request(0.0, lambda: 0.0),
              should_sample_request(0.3, lambda: 0.3)],
    "record": [should_record_request(False, 503, None, True),
               should_record_request(False, 404, None, True),
               should_record_request(False, 200, {"type": "E"}, True),
               should_record_request(False, 503, None, False),
               should_record_request(True, None, None, False)],
    "clamp": [clamp_sampling_rate(0.25), errors],
}))
"""


def test_the_sampling_helpers_answer_as_1x_did(peer_python: Path) -> None:
    answers = [
        subprocess.run(
            [python, "-I", "-c", SAMPLING_PROBE], capture_output=True, text=True, timeout=60
        )
        for python in (str(peer_python), sys.executable)
    ]
    v1, v2 = (json.loads(done.stdout) for done in answers)
    assert v2 == v1
    assert v2["excluded"][:4] == [True, True, True, False]


@pytest.fixture
def log() -> Any:
    from profilis import AsyncCollector, Emitter

    class Log:
        def __init__(self) -> None:
            self.delivered: list[dict[str, Any]] = []
            self.collector = AsyncCollector(self.delivered.extend, flush_interval=0.01)
            self.emitter = Emitter(self.collector)

        def events(self) -> list[dict[str, Any]]:
            assert self.collector.flush(timeout=5.0)
            return list(self.delivered)

    events = Log()
    yield events
    events.collector.close(timeout=5.0)


def _get(app: Any, *paths: str) -> list[int]:
    import asyncio

    import httpx

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [(await client.get(path)).status_code for path in paths]

    return asyncio.run(run())


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["id"])

    async def boom(request: Request) -> PlainTextResponse:
        raise ValueError("boom")

    async def fail(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=503)

    routes = [
        Route("/items/{id}", item),
        Route("/boom", boom),
        Route("/fail", fail),
        Route("/internal/fail", fail),
    ]
    return Starlette(routes=routes)


def test_the_1x_asgi_middleware_records_2x_events_with_route_templates(log) -> None:
    with pytest.deprecated_call():
        from profilis.asgi.middleware import ASGIConfig, ProfilisASGIMiddleware
    app = ProfilisASGIMiddleware(_starlette_app(), log.emitter, ASGIConfig())
    assert _get(app, "/items/3", "/boom") == [200, 500]
    recorded = [(e["kind"], e["method"], e["route"], e["status"]) for e in log.events()]
    assert recorded == [("HTTP", "GET", "/items/{id}", 200), ("HTTP", "GET", "/boom", 500)]


def test_the_1x_asgi_config_keeps_failures_below_its_rate_and_honours_regex_excludes(log) -> None:
    with pytest.deprecated_call():
        from profilis.asgi.middleware import ASGIConfig, ProfilisASGIMiddleware
    config = ASGIConfig(sampling_rate=0.0, route_excludes=["re:^/internal"], random_seed=1)
    app = ProfilisASGIMiddleware(_starlette_app(), log.emitter, config)
    assert _get(app, "/items/1", "/fail", "/boom", "/internal/fail") == [200, 503, 500, 503]
    # sampled out: only the failures are kept (always_sample_errors), the excluded path never
    assert [(e["route"], e["status"]) for e in log.events()] == [("/fail", 503), ("/boom", 500)]


def test_instrument_fastapi_takes_the_1x_config_and_route_excludes(log) -> None:
    from fastapi import FastAPI

    from profilis.asgi import ProfilisASGI
    from profilis.asgi._v1 import ASGIConfig, ProfilisASGIMiddleware
    from profilis.fastapi.adapter import instrument_fastapi

    plain, regex = FastAPI(), FastAPI()
    with pytest.deprecated_call(match=r"route_excludes=\) is deprecated; use exclude_routes="):
        instrument_fastapi(plain, log.emitter, route_excludes=["/profilis"])
    with pytest.deprecated_call(match=r"ASGIConfig\(\.\.\.\)\) is deprecated"):
        instrument_fastapi(regex, log.emitter, ASGIConfig(route_excludes=["re:^/x"]))
    assert [m.cls for m in plain.user_middleware] == [ProfilisASGI]
    assert plain.user_middleware[0].kwargs["exclude_routes"] == ("/profilis",)
    assert [m.cls for m in regex.user_middleware] == [ProfilisASGIMiddleware]

    @plain.get("/profilis/x")
    @plain.get("/users/{uid}")
    async def handler() -> dict[str, str]:
        return {}

    assert _get(plain, "/users/1", "/profilis/x") == [200, 200]
    assert [e["route"] for e in log.events()] == ["/users/{uid}"]


def test_jsonl_prefix_names_the_final_files_and_active_name_is_ignored(tmp_path: Path) -> None:
    from profilis.exporters.jsonl import JSONLExporter

    with pytest.deprecated_call(match=r"JSONLExporter\(prefix=\) is deprecated"):
        exporter = JSONLExporter(tmp_path, prefix="orders")
    exporter([{"kind": "FN", "fn": "f", "ts_ns": 1, "dur_ns": 2}])
    exporter.close()
    (final,) = tmp_path.glob("*.jsonl")
    assert final.name.startswith("orders-")
    with pytest.deprecated_call(match=r"active_name=\) is deprecated"):
        JSONLExporter(tmp_path / "b", active_name="live.tmp").close()


def test_the_1x_stats_store_arguments_still_count(tmp_path: Path) -> None:
    from profilis.core.stats import V1_RECORD_ROUTE, StatsStore

    with pytest.deprecated_call(match=r"window_sec=\) is deprecated; use window_minutes="):
        stats = StatsStore(window_sec=120)
    assert stats.window_seconds == 120
    with pytest.deprecated_call(match=r"StatsStore\.record\(\) is deprecated"):
        stats.record(2_000_000)
        stats.record(4_000_000, error=True)
    snapshot = stats.snapshot()
    assert snapshot["totals"]["http"]["count"] == 2
    assert snapshot["totals"]["http"]["errors"] == 1
    assert [row["route"] for row in snapshot["routes"]] == [V1_RECORD_ROUTE]


def test_the_old_constants_keep_their_values() -> None:
    from profilis.exporters import prometheus

    with pytest.deprecated_call():
        assert prometheus.DEFAULT_BUCKETS == prometheus.DEFAULT_BUCKETS_S
    assert prometheus.DEFAULT_BUCKETS_S == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
    from profilis.core import stats

    with pytest.deprecated_call():
        assert (stats.PERCENT_MAX, stats.SPARKLINE_BINS) == (100, 60)


def test_a_base_exporter_needs_export_and_closes_quietly() -> None:
    from profilis.exporters.base import BaseExporter

    with pytest.raises(TypeError):
        BaseExporter()  # type: ignore[abstract]

    class Keep(BaseExporter):
        def __init__(self) -> None:
            self.got: list[dict[str, Any]] = []

        def export(self, events: list[dict[str, Any]]) -> None:
            self.got.extend(events)

    keep = Keep()
    keep([{"kind": "FN"}])
    keep.close()
    assert keep.got == [{"kind": "FN"}]


def test_the_1x_prometheus_arguments_still_work() -> None:
    from flask import Flask
    from prometheus_client import generate_latest

    from profilis.exporters.prometheus import PrometheusExporter, make_metrics_blueprint

    with pytest.deprecated_call() as caught:
        prom = PrometheusExporter(service="shop", instance="i-1", worker="w1", buckets=(0.5, 1.0))
    assert [str(w.message).split(" is")[0] for w in caught] == [
        "PrometheusExporter(buckets=)",
        "PrometheusExporter(instance=)",
        "PrometheusExporter(worker=)",
    ]
    prom([{"kind": "FN", "fn": "f", "ts_ns": 1, "dur_ns": 700_000_000}])
    text = generate_latest(prom.registry).decode()  # 1.x: a registry of its own
    assert 'le="0.5"' in text and 'le="0.25"' not in text  # its buckets
    assert "worker=" in text
    app = Flask(__name__)
    with pytest.deprecated_call(match=r"url_prefix=\) is deprecated; use url='/ops/metrics'"):
        app.register_blueprint(make_metrics_blueprint(prom.registry, url_prefix="/ops"))
    assert "profilis_function_calls_total" in app.test_client().get("/ops/metrics").text
