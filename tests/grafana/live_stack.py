"""Real Prometheus and Alertmanager on loopback for test_live.py, and a small client for them.

Prometheus scrapes one target every second under the job name the rules expect, with the
`namespace`/`pod` target labels a PodMonitor would add, evaluates a rules file every second
and sends alerts to the Alertmanager. Both run from the Debian packages
(scripts/install-prometheus.sh) in their own temp dirs and are always stopped. Their configs
come from `demo.monitoring`, so `make demo` and these tests run the same setup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from demo.monitoring import ALERTMANAGER_CONFIG
from demo.monitoring import JOB as JOB  # test_live.py imports it from here
from demo.monitoring import prometheus_config as _prometheus_config
from tests.support.processes import free_port, run_process

T = TypeVar("T")
Json = dict[str, Any]

# What a PodMonitor would add; the dashboards' namespace and pod variables read them.
TARGET_LABELS = {"namespace": "shop", "pod": "shop-5d8f7c9b4-x2k7q"}


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.25
) -> T:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


@dataclass
class PrometheusAPI:
    url: str
    client: httpx.Client

    def _get(self, path: str, **params: Any) -> Any:
        response = self.client.get(self.url + path, params=params)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[Json]:
        data = self._get("/api/v1/query", query=expr)
        result: list[Json] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self._get(f"/api/v1/label/{label}/values", **{"match[]": match})
        return values

    def alerts(self) -> list[Json]:
        alerts: list[Json] = self._get("/api/v1/alerts")["alerts"]
        return alerts


def prometheus_config(target: str, rules: Path, alertmanager: str) -> str:
    return _prometheus_config(target, rules, alertmanager, TARGET_LABELS)


@contextlib.contextmanager
def running_alertmanager(binary: str, workdir: Path) -> Iterator[str]:
    """Yields the Alertmanager's base URL."""
    config = workdir / "alertmanager.yml"
    config.write_text(yaml.safe_dump(dict(ALERTMANAGER_CONFIG)))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port
    ]
    with run_process(argv, port=port, ready_timeout=30):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def running_prometheus(
    binary: str, workdir: Path, *, target: str, rules: Path, alertmanager: str
) -> Iterator[PrometheusAPI]:
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(target, rules, alertmanager))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (
        run_process(argv, port=port, ready_timeout=30),
        httpx.Client(timeout=5.0) as client,
    ):
        api = PrometheusAPI(f"http://127.0.0.1:{port}", client)
        wait_until(
            lambda: client.get(api.url + "/-/ready").status_code == 200,
            timeout=30,
            what="Prometheus ready",
        )
        yield api


def alertmanager_alerts(url: str) -> list[Json]:
    alerts: list[Json] = httpx.get(f"http://{url}/api/v2/alerts", timeout=5.0).json()
    return alerts
