"""The dashboard mounted in-process: the Flask blueprint and the ASGI app (Starlette, FastAPI)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.routing import Mount

from profilis import ConfigError
from profilis.core.stats import StatsStore
from profilis.flask.ui import make_ui_blueprint
from profilis.ui import make_ui_asgi_app

TOKEN = "mount-token"


def asgi_get(app: Any, *requests: tuple[str, str, dict[str, str]], root_path: str = ""):
    """Send (method, path, headers) requests to an ASGI app in-process; the responses."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.request(m, path, headers=h) for m, path, h in requests]

    return asyncio.run(run())


@pytest.fixture
def stats() -> StatsStore:
    store = StatsStore()
    store([{"kind": "HTTP", "dur_ns": 2_000_000, "method": "GET", "route": "/x", "status": 200}])
    return store


def flask_client(stats: StatsStore, **kwargs: Any):
    app = Flask(__name__)
    app.register_blueprint(make_ui_blueprint(stats, **kwargs))
    return app.test_client()


@pytest.mark.parametrize("path", ["/_profilis", "/_profilis/"])
def test_flask_serves_the_page_at_the_prefix_with_and_without_a_slash(stats, path):
    response = flask_client(stats).get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert b'data-metrics-url="/_profilis/metrics.json"' in response.data


def test_flask_serves_metrics_and_assets_under_a_custom_prefix(stats):
    client = flask_client(stats, ui_prefix="/ops/dash/")
    metrics = client.get("/ops/dash/metrics.json")
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"] == "application/json"
    assert [row["route"] for row in metrics.get_json()["routes"]] == ["/x"]
    assert client.get("/ops/dash/assets/dashboard.css").status_code == 200
    assert client.get("/ops/dash/other").status_code == 404
    assert client.get("/_profilis").status_code == 404
    refused = client.post("/ops/dash/metrics.json")
    assert (refused.status_code, refused.headers["Cache-Control"]) == (405, "no-store")
    head = client.head("/ops/dash/")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) > 0


def test_flask_behind_a_script_root_addresses_its_data_there(stats):
    client = flask_client(stats)
    page = client.get("/_profilis/", environ_overrides={"SCRIPT_NAME": "/shop"})
    assert b'data-metrics-url="/shop/_profilis/metrics.json"' in page.data


def test_flask_blueprint_with_a_token(stats):
    client = flask_client(stats, ui_auth_token=TOKEN)
    assert client.get("/_profilis/").status_code == 401
    assert client.get("/_profilis/metrics.json").status_code == 401
    assert client.get(f"/_profilis/?token={TOKEN}").status_code == 200
    ok = client.get("/_profilis/metrics.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_flask_two_dashboards_in_one_app_need_two_names(stats):
    app = Flask(__name__)
    app.register_blueprint(make_ui_blueprint(stats))
    app.register_blueprint(make_ui_blueprint(stats, "/private", TOKEN, name="private_ui"))
    client = app.test_client()
    assert client.get("/_profilis/").status_code == 200
    assert client.get("/private/").status_code == 401


def test_flask_refuses_a_prefix_that_is_not_a_path(stats):
    with pytest.raises(ConfigError, match="ui_prefix"):
        make_ui_blueprint(stats, ui_prefix="_profilis")


def test_starlette_mount_serves_page_data_and_token_check(stats):
    app = Starlette(
        routes=[
            Mount("/_profilis", app=make_ui_asgi_app(stats)),
            Mount("/private", app=make_ui_asgi_app(stats, ui_auth_token=TOKEN)),
        ]
    )
    page, metrics, script, refused, allowed, post = asgi_get(
        app,
        ("GET", "/_profilis/", {}),
        ("GET", "/_profilis/metrics.json", {}),
        ("GET", "/_profilis/assets/dashboard.js", {}),
        ("GET", "/private/metrics.json", {}),
        ("GET", "/private/metrics.json", {"X-Profilis-Token": TOKEN}),
        ("POST", "/_profilis/metrics.json", {}),
    )
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'data-metrics-url="/_profilis/metrics.json"' in page.text
    assert metrics.json()["routes"][0]["route"] == "/x"
    assert script.status_code == 200
    assert (refused.status_code, allowed.status_code, post.status_code) == (401, 200, 405)


def test_fastapi_mount_under_a_root_path(stats):
    app = FastAPI()
    app.mount("/_profilis", make_ui_asgi_app(stats))
    # As uvicorn --root-path passes it: the full path, with the prefix in root_path too.
    (page,) = asgi_get(app, ("GET", "/api/_profilis/", {}), root_path="/api")
    assert page.status_code == 200
    assert 'data-metrics-url="/api/_profilis/metrics.json"' in page.text


def test_the_asgi_app_runs_on_its_own_with_lifespan_and_refuses_websockets(stats):
    app = make_ui_asgi_app(stats)
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(incoming)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        await app({"type": "websocket", "path": "/"}, receive, send)

    asyncio.run(run())
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]
    metrics, page = asgi_get(app, ("GET", "/metrics.json", {}), ("GET", "/", {}))
    assert (metrics.status_code, page.status_code) == (200, 200)
