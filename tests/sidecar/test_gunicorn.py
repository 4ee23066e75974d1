"""A real gunicorn app with 4 workers, each shipping its requests to one sidecar.

One /metrics shows the sum of every worker's requests, per route template, and 4 live
workers, each with its own queue gauges.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.sidecar.helpers import running_sidecar, scrape, short_dir, status, value, wait_for
from tests.support.processes import free_port, run_process

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
ROUNDS = 60  # each round: /hello, /items/<n>, and a 404


def test_four_gunicorn_workers_one_metrics_endpoint() -> None:
    app_port = free_port()
    with short_dir() as tmp, running_sidecar(tmp / "c.sock", "--service", "fallback") as sidecar:
        env = {
            "PROFILIS_COLLECTOR_ADDRESS": f"unix://{tmp}/c.sock",
            "PROFILIS_SERVICE_NAME": "shop",
            "PROFILIS_FLUSH_INTERVAL": "0.05",
        }
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            *("--workers", str(WORKERS), "--bind", f"127.0.0.1:{app_port}"),
            *("--graceful-timeout", "2", "tests.sidecar.apps.collector_app:app"),
        ]
        with run_process(argv, env=env, cwd=REPO_ROOT, port=app_port):
            port = sidecar.port or 0
            # Heartbeats: every worker is listed before it has served anything.
            wait_for(lambda: status(port), lambda s: len(s["workers"]) == WORKERS, timeout=20)

            def one_round(n: int) -> int:
                with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as client:
                    assert client.get("/hello").status_code == 200
                    served = client.get(f"/items/{n}")
                    assert client.get(f"/missing/{n}").status_code == 404
                pid: int = served.json()["pid"]
                return pid

            with ThreadPoolExecutor(8) as pool:
                serving_pids = set(pool.map(one_round, range(ROUNDS)))

            samples = wait_for(
                lambda: scrape(port),
                lambda s: value(s, "profilis_http_requests_total") >= 3 * ROUNDS,
                timeout=15,
            )
            info = status(port)

    def requests(route: str, code: str) -> float:
        return value(
            samples, "profilis_http_requests_total", service="shop", route=route, status=code
        )

    assert value(samples, "profilis_http_requests_total") == 3 * ROUNDS
    assert requests("/hello", "200") == ROUNDS
    assert requests("/items/<int:item_id>", "200") == ROUNDS
    assert requests("<unmatched>", "404") == ROUNDS
    assert value(samples, "profilis_sidecar_workers") == WORKERS
    workers = {labels["worker"] for labels, _ in samples["profilis_queue_depth"]}
    assert len(workers) == WORKERS
    assert {str(pid) for pid in serving_pids} <= workers
    assert len(serving_pids) >= 2  # the load really was spread over several workers
    per_worker = {w["pid"]: w["events_received"] for w in info["workers"]}
    assert sum(per_worker.values()) == 3 * ROUNDS
    assert all(w["service"] == "shop" and w["queue_capacity"] == 2048 for w in info["workers"])
    assert value(samples, "profilis_events_dropped_total") == 0
