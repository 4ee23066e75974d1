"""One sampling decision per request covers everything it causes: HTTP, DB and FN events.

A FastAPI app (through ProfilisASGI) and a Flask app (through ProfilisWSGI) run a real
SQLite query and a ``@profile`` function per request; work done outside any request is
recorded whatever the rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from profilis import profile
from profilis.fastapi import instrument_fastapi
from profilis.flask import ProfilisFlask
from profilis.sqlalchemy import instrument_engine

from .conftest import EventLog


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'sampling.db'}")
    yield engine
    engine.dispose()


def handler_work(log: EventLog, engine: Engine) -> Callable[[], int]:
    """What every request handler does: one DB query inside one profiled function."""
    instrument_engine(engine, log.emitter)

    @profile(log.emitter, name="lookup")
    def lookup() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT 1")).scalar_one())

    return lookup


def fastapi_get(app: FastAPI, path: str, count: int) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(count):
                assert (await client.get(path)).status_code == 200

    asyncio.run(run())


def fastapi_app(log: EventLog, engine: Engine, sample: float) -> FastAPI:
    lookup = handler_work(log, engine)
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "one": lookup()}

    instrument_fastapi(app, log.emitter, sample=sample)
    return app


def flask_app(log: EventLog, engine: Engine, sample: float) -> Flask:
    lookup = handler_work(log, engine)
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "one": lookup()}

    ProfilisFlask(app, emitter=log.emitter, sample=sample)
    return app


def kinds(log: EventLog) -> list[str]:
    return sorted(e["kind"] for e in log.events())


def test_fastapi_sampled_out_requests_record_no_db_or_fn_events(log, engine):
    app = fastapi_app(log, engine, sample=0.0)
    fastapi_get(app, "/items/1", count=3)
    assert kinds(log) == []


def test_fastapi_sampled_in_requests_record_all_they_cause_in_one_trace(log, engine):
    app = fastapi_app(log, engine, sample=1.0)
    fastapi_get(app, "/items/1", count=2)
    assert kinds(log) == ["DB", "DB", "FN", "FN", "HTTP", "HTTP"]
    for http in log.events("HTTP"):
        trace = http["trace_id"]
        fn = next(e for e in log.events("FN") if e["trace_id"] == trace)
        db = next(e for e in log.events("DB") if e["trace_id"] == trace)
        assert fn["parent_span_id"] == http["span_id"]
        assert db["span_id"] == fn["span_id"]  # the query ran inside the profiled call


def test_flask_sampled_out_requests_record_no_db_or_fn_events(log, engine):
    app = flask_app(log, engine, sample=0.0)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/items/1").status_code == 200
    assert kinds(log) == []


def test_flask_sampled_in_requests_record_all_they_cause(log, engine):
    app = flask_app(log, engine, sample=1.0)
    assert app.test_client().get("/items/1").status_code == 200
    assert kinds(log) == ["DB", "FN", "HTTP"]
    assert len({e["trace_id"] for e in log.events()}) == 1


def test_an_excluded_route_records_nothing_it_causes(log, engine):
    lookup = handler_work(log, engine)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, int]:
        return {"one": lookup()}

    instrument_fastapi(app, log.emitter, exclude_routes=["/health"])
    fastapi_get(app, "/health", count=2)
    assert kinds(log) == []


@pytest.mark.parametrize("make_app", [fastapi_app, flask_app])
def test_work_outside_requests_is_recorded_whatever_the_rate(log, engine, make_app):
    make_app(log, engine, 0.0)
    lookup = handler_work(log, engine)
    assert lookup() == 1  # a job, a CLI command, start-up code: no request around it
    assert kinds(log) == ["DB", "FN"]


def v1_middleware_app(log: EventLog, engine: Engine, config: Any) -> FastAPI:
    """The 1.x way: ``ProfilisASGIMiddleware`` with an ``ASGIConfig``."""
    from profilis.asgi.middleware import ProfilisASGIMiddleware

    lookup = handler_work(log, engine)
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "one": lookup()}

    @app.get("/fail")
    def fail() -> dict[str, Any]:
        lookup()
        raise KeyError("missing")

    app.add_middleware(ProfilisASGIMiddleware, emitter=log.emitter, config=config)
    return app


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_1x_asgi_middleware_sampled_out_records_nothing_the_request_causes(log, engine):
    from profilis.asgi.middleware import ASGIConfig

    app = v1_middleware_app(log, engine, ASGIConfig(sampling_rate=0.0))
    fastapi_get(app, "/items/1", count=3)
    assert kinds(log) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_1x_asgi_middleware_excluded_route_records_nothing_it_causes(log, engine):
    from profilis.asgi.middleware import ASGIConfig

    app = v1_middleware_app(log, engine, ASGIConfig(route_excludes=["/items"]))
    fastapi_get(app, "/items/1", count=2)
    assert kinds(log) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_1x_asgi_middleware_keeps_a_sampled_out_failure_but_not_what_it_caused(log, engine):
    from profilis.asgi.middleware import ASGIConfig

    config = ASGIConfig(sampling_rate=0.0, always_sample_errors=True)
    app = v1_middleware_app(log, engine, config)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/items/1")).status_code == 200
            assert (await client.get("/fail")).status_code == 500

    asyncio.run(run())
    (failure,) = log.events()
    assert (failure["kind"], failure["route"], failure["error"]) == ("HTTP", "/fail", "KeyError")
    assert len(failure["trace_id"]) == 32  # the kept event still has its own span
