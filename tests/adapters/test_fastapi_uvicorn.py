"""ProfilisASGI (through instrument_fastapi) under real uvicorn, over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.adapters.servers import (
    CLIENT_TIMEOUT_S,
    Server,
    by_kind,
    new_traceparent,
    serve,
    uvicorn_argv,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("uvicorn"), uvicorn_argv) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        yield http


def get(client: httpx.Client, server: Server, path: str) -> tuple[httpx.Response, str]:
    header, trace_id, _ = new_traceparent()
    return client.get(f"{server.url}{path}", headers={"traceparent": header}), trace_id


def test_the_lifespan_reached_the_app(server):
    # uvicorn only listens once startup completed, so the marker is there already.
    assert (server.events_dir / "lifespan-startup").read_text() == str(server.process.pid)


def test_a_request_is_one_http_event_with_fn_and_db_events_in_its_trace(server, client):
    header, trace_id, caller_span = new_traceparent()
    response = client.get(f"{server.url}/items/7", headers={"traceparent": header})
    assert response.json() == {"id": 7, "name": "grace"}

    events = by_kind(server.events_of(trace_id, count=3))
    (http,) = events["HTTP"]
    assert (http["route"], http["method"], http["status"]) == ("/items/{item_id}", "GET", 200)
    assert http["parent_span_id"] == caller_span
    assert http["bytes_out"] == len(response.content)
    (fn,) = events["FN"]
    assert (fn["fn"], fn["parent_span_id"]) == ("fastapi_app.load_item", http["span_id"])
    (db,) = events["DB"]
    assert db["query"] == "SELECT name FROM users WHERE id = ?"
    assert (db["db_vendor"], db["span_id"]) == ("sqlite", fn["span_id"])


def test_a_mounted_route_is_labelled_with_the_full_template(server, client):
    response, trace_id = get(client, server, "/tenants/acme/things/3")
    assert response.json() == {"tenant": "acme", "thing": 3}
    (http,) = server.events_of(trace_id)
    assert http["route"] == "/tenants/{tenant}/things/{thing_id}"


@pytest.mark.parametrize("path", ["/no/such/page/12345", "/tenants/acme/nothing/here"])
def test_an_unmatched_path_is_one_label_never_the_raw_path(server, client, path):
    response, trace_id = get(client, server, path)
    assert response.status_code == 404
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"]) == ("<unmatched>", 404)


def test_a_failing_endpoint_is_a_500_naming_the_exception(server, client):
    response, trace_id = get(client, server, "/boom")
    assert response.status_code == 500
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"], http["error"]) == ("/boom", 500, "RuntimeError")


def test_a_chunked_upload_reaches_the_endpoint_intact(server, client):
    parts = [os.urandom(65_536) for _ in range(3)] + [b"tail"]
    header, trace_id, _ = new_traceparent()
    response = client.post(
        f"{server.url}/upload", content=iter(parts), headers={"traceparent": header}
    )
    body = b"".join(parts)
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["method"]) == ("/upload", "POST")
    assert "bytes_in" not in http


@pytest.mark.parametrize(
    ("kind", "first", "second"),
    [
        ("stream", b"first\n", b"second\n"),
        ("sse", b"event: tick\ndata: one\n\n", b"data: two\n\n"),
    ],
)
def test_a_streamed_response_is_delivered_chunk_by_chunk(server, client, kind, first, second):
    header, trace_id, _ = new_traceparent()
    name = f"{kind}-{trace_id}"
    with client.stream(
        "GET", f"{server.url}/{kind}/{name}", headers={"traceparent": header}
    ) as response:
        chunks = response.iter_raw()
        # The server's generator waits for the flag before its second chunk, and the flag
        # is only created once the first chunk is here: buffering would time out instead.
        assert next(chunks) == first
        time.sleep(0.05)  # the event's duration must include this wait
        server.flag(name)
        assert b"".join(chunks) == second
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"]) == (f"/{kind}/{{name}}", 200)
    assert http["bytes_out"] == len(first) + len(second)
    assert http["dur_ns"] >= 50_000_000


def test_background_tasks_neither_delay_the_event_nor_leave_the_trace(server, client):
    header, trace_id, _ = new_traceparent()
    name = f"background-{trace_id}"
    response = client.get(f"{server.url}/background/{name}", headers={"traceparent": header})
    assert response.json() == {"queued": name}
    # The task is still waiting for its flag, yet the request's event is out already.
    (http,) = server.events_of(trace_id)
    assert http["route"] == "/background/{name}"
    assert not (server.events_dir / f"background-done-{name}").exists()

    server.flag(name)
    events = by_kind(server.events_of(trace_id, count=3))
    assert [e["fn"] for e in events["FN"]] == ["fastapi_app.load_item"]
    (db,) = events["DB"]
    assert db["parent_span_id"] == http["span_id"]


def test_excluded_routes_are_served_and_not_recorded(server, client):
    response, trace_id = get(client, server, "/health")
    assert response.json() == "ok"
    _, marker_trace = get(client, server, "/items/1")
    assert server.events_of(marker_trace)  # one process: the writer has caught up
    assert server.events_of(trace_id, timeout=0.0) == []
