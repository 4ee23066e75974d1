"""The load the dashboard tests send to their servers, and the two apps' route names.

Shared by test_servers.py (exact counts under gunicorn and uvicorn) and test_browser.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.adapters.servers import CLIENT_TIMEOUT_S


def gunicorn_one_worker_argv(port: int) -> list[str]:
    # One worker: each gunicorn worker has its own StatsStore, and the exact-count checks
    # need every request to land in the store that answers metrics.json.
    return [
        sys.executable, "-m", "gunicorn",
        "--workers", "1",
        "--preload",  # imported before the fork: the store must come back empty in the worker
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "2",
        "tests.ui.apps.flask_ui_app:app",
    ]  # fmt: skip


def uvicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn",
        "tests.ui.apps.fastapi_ui_app:app",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--no-access-log",
    ]  # fmt: skip


#: Bound on waiting for the collector to deliver what the server recorded.
DELIVERY_TIMEOUT_S = 15.0
WORK_MS = (0, 1, 2, 3, 5, 8)


@dataclass(frozen=True)
class App:
    """How one test app names its routes and what its failing endpoint raises."""

    argv: Callable[[int], Sequence[str]]
    item_path: str
    item_route: str
    work_route: str
    error_type: str
    function: str


FLASK = App(
    gunicorn_one_worker_argv,
    "/users/{}",
    "/users/<int:user_id>",
    "/work/<int:ms>",
    "ValueError",
    "flask_ui_app.load_user",
)
FASTAPI = App(
    uvicorn_argv,
    "/items/{}",
    "/items/{item_id}",
    "/work/{ms}",
    "RuntimeError",
    "fastapi_ui_app.load_item",
)


def plan(app: App) -> list[tuple[str, str, int]]:
    """(path, route label, expected status) of every request the load sends."""
    requests = [(app.item_path.format(1 + i % 7), app.item_route, 200) for i in range(240)]
    requests += [(f"/work/{WORK_MS[i % 6]}", app.work_route, 200) for i in range(84)]
    requests += [("/boom", "/boom", 500) for _ in range(16)]
    requests += [(f"/missing/{i}", "<unmatched>", 404) for i in range(8)]
    return requests


def send(base_url: str, requests: list[tuple[str, str, int]], workers: int = 4) -> None:
    def run(share: list[tuple[str, str, int]]) -> None:
        with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as client:
            for path, _, status in share:
                # An unhandled exception makes uvicorn close the connection after its 500.
                headers = {"Connection": "close"} if status == 500 else {}
                assert client.get(path, headers=headers).status_code == status, path

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(run, requests[i::workers]) for i in range(workers)]:
            future.result()


def wait_for_count(client: httpx.Client, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        metrics: dict[str, Any] = client.get("/_profilis/metrics.json").json()
        if metrics["totals"]["http"]["count"] >= expected or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)
