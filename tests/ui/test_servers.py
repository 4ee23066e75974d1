"""The dashboard served by real servers under load: gunicorn (Flask) and uvicorn (FastAPI).

A known set of requests goes over HTTP on 127.0.0.1; ``metrics.json`` must count exactly
those, and its percentiles must be within the histogram's stated error of the exact ones,
computed from the durations the server recorded (the test apps also write every event to
a JSON-lines file). gunicorn runs one worker: each worker has its own StatsStore.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.adapters.apps.sink import read_events
from tests.adapters.servers import CLIENT_TIMEOUT_S, Server, serve
from tests.ui.apps.common import TOKEN
from tests.ui.load import FASTAPI, FLASK, App, plan, send, wait_for_count

pytestmark = pytest.mark.slow


@dataclass
class Loaded:
    app: App
    server: Server
    sent: Counter[tuple[str, str]]
    metrics: dict[str, Any]


@pytest.fixture(scope="module", params=[FLASK, FASTAPI], ids=["gunicorn-flask", "uvicorn-fastapi"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    app: App = request.param
    with serve(tmp_path_factory.mktemp("ui-server"), app.argv) as server:
        requests = plan(app)
        started = time.monotonic()
        send(server.url, requests)
        elapsed = time.monotonic() - started
        print(f"\n{len(requests)} requests to {app.argv.__name__} in {elapsed:.2f} s")
        with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
            metrics = wait_for_count(client, len(requests))
        sent = Counter(("GET", route) for _, route, _ in requests)
        yield Loaded(app, server, sent, metrics)


def nearest_rank(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1] / 1e6


def test_counts_match_the_requests_sent_exactly(loaded: Loaded) -> None:
    metrics = loaded.metrics
    counted = {(row["method"], row["route"]): row["count"] for row in metrics["routes"]}
    assert counted == dict(loaded.sent)
    assert metrics["totals"]["http"]["count"] == sum(loaded.sent.values())
    by_route = {row["route"]: row for row in metrics["routes"]}
    assert by_route["/boom"]["errors"] == 16
    assert by_route["/boom"]["statuses"]["5xx"] == 16
    assert by_route["<unmatched>"]["statuses"]["4xx"] == 8
    assert by_route["<unmatched>"]["errors"] == 0  # a 404 is the client's error, not ours
    assert by_route[loaded.app.item_route]["errors"] == 0


def test_percentiles_are_within_the_histogram_error_of_the_exact_ones(loaded: Loaded) -> None:
    durations: dict[str, list[int]] = {}
    for event in read_events(loaded.server.events_dir):
        if event["kind"] == "HTTP":
            durations.setdefault(event["route"], []).append(event["dur_ns"])
    assert {r: len(d) for r, d in durations.items()} == {r: n for (_, r), n in loaded.sent.items()}
    bound = loaded.metrics["histogram"]["relative_error"] + 1e-4
    for row in loaded.metrics["routes"]:
        exact = durations[row["route"]]
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            truth = nearest_rank(exact, q)
            # 0.0005 ms: metrics.json rounds to the microsecond.
            assert abs(row[name] - truth) <= truth * bound + 0.0005, (row["route"], name, truth)
        assert row["max_ms"] == pytest.approx(max(exact) / 1e6, abs=0.0005)


def test_errors_functions_and_queries_are_summarised(loaded: Loaded) -> None:
    metrics = loaded.metrics
    assert metrics["errors"]["by_type"] == [{"error": loaded.app.error_type, "count": 16}]
    recent = metrics["errors"]["recent"]
    assert len(recent) == 16
    assert {(e["kind"], e["name"], e["error"], e["status"]) for e in recent} == {
        ("HTTP", "GET /boom", loaded.app.error_type, 500)
    }
    (function,) = metrics["functions"]
    assert (function["fn"], function["count"]) == (loaded.app.function, 240)
    (vendor,) = metrics["db"]["vendors"]
    assert (vendor["db_vendor"], vendor["count"]) == ("sqlite", 240)
    (query,) = metrics["db"]["queries"]
    assert (query["query"], query["count"]) == ("SELECT name FROM users WHERE id = ?", 240)


def test_collector_health_is_reported(loaded: Loaded) -> None:
    health = loaded.metrics["collector"]
    assert health["dropped_total"] == 0
    assert health["queue_capacity"] == 2048
    assert health["enqueued"] >= 240 * 3 + 84 + 16 + 8  # each item request: HTTP, FN, DB
    assert [sink["name"] for sink in health["sinks"]][-1].startswith("StatsStore")


def test_the_token_guards_only_the_protected_mount(loaded: Loaded) -> None:
    with httpx.Client(base_url=loaded.server.url, timeout=CLIENT_TIMEOUT_S) as client:
        for path in ("/_profilis_private/", "/_profilis_private/metrics.json"):
            missing = client.get(path)
            assert missing.status_code == 401
            assert missing.headers["cache-control"] == "no-store"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = client.get(path, headers={"Authorization": "Bearer not-" + TOKEN})
            assert wrong.status_code == 401
            assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            assert client.get(path, headers={"X-Profilis-Token": TOKEN}).status_code == 200
            assert client.get(path, params={"token": TOKEN}).status_code == 200
        page = client.get("/_profilis/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'data-metrics-url="/_profilis/metrics.json"' in page.text


def test_the_dashboard_requests_are_not_counted_as_app_routes(loaded: Loaded) -> None:
    with httpx.Client(base_url=loaded.server.url, timeout=CLIENT_TIMEOUT_S) as client:
        for _ in range(5):
            client.get("/_profilis/metrics.json")
        metrics = client.get("/_profilis/metrics.json").json()
    assert not [row for row in metrics["routes"] if "_profilis" in row["route"]]
