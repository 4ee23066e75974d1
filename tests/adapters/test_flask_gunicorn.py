"""ProfilisFlask under real gunicorn (two workers, preloaded), over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.adapters.servers import (
    CLIENT_TIMEOUT_S,
    Server,
    by_kind,
    gunicorn_argv,
    new_traceparent,
    serve,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("gunicorn"), gunicorn_argv) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        yield http


def test_a_request_is_one_http_event_with_fn_and_db_events_in_its_trace(server, client):
    header, trace_id, caller_span = new_traceparent()
    response = client.get(f"{server.url}/users/7", headers={"traceparent": header})
    assert response.status_code == 200
    assert response.json()["name"] == "grace"

    events = by_kind(server.events_of(trace_id, count=3))
    (http,) = events["HTTP"]
    assert http["route"] == "/users/<int:user_id>"
    assert (http["method"], http["status"]) == ("GET", 200)
    assert http["parent_span_id"] == caller_span
    assert http["bytes_out"] == len(response.content)
    assert "error" not in http
    (fn,) = events["FN"]
    assert fn["fn"] == "flask_app.load_user"
    assert fn["parent_span_id"] == http["span_id"]
    (db,) = events["DB"]
    assert db["query"] == "SELECT name FROM users WHERE id = ?"
    assert db["db_vendor"] == "sqlite"
    assert db["span_id"] == fn["span_id"]


def test_an_unmatched_path_is_one_label_never_the_raw_path(server, client):
    header, trace_id, _ = new_traceparent()
    response = client.get(f"{server.url}/no/such/page/12345", headers={"traceparent": header})
    assert response.status_code == 404
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"]) == ("<unmatched>", 404)


def test_a_failing_view_is_a_500_naming_the_exception(server, client):
    header, trace_id, _ = new_traceparent()
    response = client.get(f"{server.url}/boom", headers={"traceparent": header})
    assert response.status_code == 500
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"], http["error"]) == ("/boom", 500, "ValueError")


def test_excluded_routes_are_served_and_not_recorded(server, client):
    header, trace_id, _ = new_traceparent()
    assert client.get(f"{server.url}/health", headers={"traceparent": header}).text == "ok"
    # A request after it, on the same server, shows the writer has caught up.
    marker, marker_trace, _ = new_traceparent()
    client.get(f"{server.url}/pid", headers={"traceparent": marker})
    assert server.events_of(marker_trace)
    # The marker may have gone to the other worker: give the first one a flush or two more.
    assert server.events_of(trace_id, timeout=0.3) == []


def test_a_chunked_upload_reaches_the_view_intact(server, client):
    parts = [os.urandom(65_536) for _ in range(3)] + [b"tail"]
    header, trace_id, _ = new_traceparent()
    response = client.post(
        f"{server.url}/upload", content=iter(parts), headers={"traceparent": header}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    body = b"".join(parts)
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    (http,) = server.events_of(trace_id)
    assert (http["route"], http["method"], http["status"]) == ("/upload", "POST", 200)
    assert "bytes_in" not in http  # no Content-Length, and the body is never read by us


def test_a_sized_upload_counts_its_content_length(server, client):
    header, trace_id, _ = new_traceparent()
    body = b"x" * 1000
    response = client.post(f"{server.url}/upload", content=body, headers={"traceparent": header})
    assert response.json()["size"] == 1000
    (http,) = server.events_of(trace_id)
    assert http["bytes_in"] == 1000


def _read_incrementally(server: Server, client: httpx.Client, path: str, flag: str) -> list[bytes]:
    """Read the first chunk, then let the server produce the second, then read the rest.

    The server's generator waits for the flag file before its second chunk, and the flag is
    only created once the first chunk is here: a buffered response would time out instead.
    """
    header, _, _ = new_traceparent()
    with client.stream("GET", f"{server.url}{path}", headers={"traceparent": header}) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = next(chunks)
        server.flag(flag)
        return [first, *chunks]


def test_a_streamed_response_is_delivered_chunk_by_chunk(server, client):
    header, trace_id, _ = new_traceparent()
    name = f"stream-{trace_id}"
    with client.stream(
        "GET", f"{server.url}/stream/{name}", headers={"traceparent": header}
    ) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        assert first.startswith(b"first ")
        streaming_pid = int(first.split()[1])
        # That worker is busy with this stream; the other one answers meanwhile.
        other_header, other_trace, _ = new_traceparent()
        other = client.get(f"{server.url}/pid", headers={"traceparent": other_header})
        other_pid = int(other.text)
        assert other_pid != streaming_pid
        time.sleep(0.05)  # the event's duration must include this wait
        server.flag(name)
        rest = b"".join(chunks)
    assert rest == b"second\n"

    (http,) = server.events_of(trace_id)
    assert (http["route"], http["status"]) == ("/stream/<name>", 200)
    assert http["bytes_out"] == len(first) + len(rest)
    assert http["dur_ns"] >= 50_000_000
    # Both workers record, each into its own file (the collector was rebuilt after fork).
    assert server.events_of(other_trace)
    for pid in (streaming_pid, other_pid):
        assert (server.events_dir / f"events-{pid}.jsonl").exists()


def test_server_sent_events_are_delivered_as_they_happen(server, client):
    name = f"sse-{new_traceparent()[1]}"
    received = _read_incrementally(server, client, f"/sse/{name}", name)
    assert received[0] == b"event: tick\ndata: one\n\n"
    assert b"".join(received[1:]) == b"data: two\n\n"


def test_concurrent_requests_each_get_their_own_trace(server):
    traces = [new_traceparent() for _ in range(8)]

    def fetch(header: str) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            assert http.get(f"{server.url}/users/1", headers={"traceparent": header}).is_success

    threads = [threading.Thread(target=fetch, args=(header,)) for header, _, _ in traces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT_S * 2)
    for _, trace_id, caller_span in traces:
        events = by_kind(server.events_of(trace_id, count=3))
        assert [e["parent_span_id"] for e in events["HTTP"]] == [caller_span]
        assert len(events["DB"]) == 1
