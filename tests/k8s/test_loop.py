"""The loop closed on real objects: a Deployment annotated on the real control plane, its pod
as the API server stored it (injected by the operator's webhook) read back and run on this
machine by ``python -m profilis_operator.podrun``, requests sent to the app, and the injected
sidecar's /metrics counting them under the route template. Flask under gunicorn (4 workers),
FastAPI under uvicorn (2 workers); the apps (tests/k8s/apps/) hold no Profilis code.

There is no kubelet: kwok only marks the pod Running. The ports the processes bind here are
chosen when the Deployment and its ProfilisConfig are written, as a user would write them.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client

from tests.k8s.kube import (
    APP_IMAGE,
    GROUP,
    PLURAL,
    VERSION,
    Kube,
    deployment,
    profilis_config,
    wait_for,
)
from tests.k8s.operator import LocalOperator
from tests.sidecar.helpers import Families, scrape, value
from tests.support.processes import free_port, run_process

# Several real server processes per test, like tests/operator/test_podrun.py.
pytestmark = pytest.mark.slow

APPS = Path(__file__).with_name("apps")
#: The app image runs this virtualenv's gunicorn and uvicorn, in the apps' directory.
IMAGES = {APP_IMAGE: {"path": [str(Path(sys.executable).parent)], "workdir": str(APPS)}}
SERVICE = "shop"
ANNOTATIONS = {"profilis.io/inject": "true", "profilis.io/config": "loop"}
REQUESTS = 40
ORDER_IDS = (1, 2, 7, 1234)


@dataclass(frozen=True)
class Server:
    """How the app container serves the shop, and what /metrics must show for it."""

    command: Callable[[int], list[str]]
    route: str
    workers: int


SERVERS = {
    "flask-gunicorn-4-workers": Server(
        lambda port: [
            *("gunicorn", "--workers", "4", "--bind", f"0.0.0.0:{port}"),
            *("--graceful-timeout", "2", "shop_flask:app"),
        ],
        "/orders/<int:order_id>",
        4,
    ),
    "fastapi-uvicorn-2-workers": Server(
        lambda port: [
            *("uvicorn", "shop_asgi:app", "--host", "0.0.0.0", "--port", str(port)),
            *("--workers", "2", "--no-access-log"),
        ],
        "/orders/{order_id}",
        2,
    ),
}


def deploy(
    kube: Kube, namespace: str, command: list[str], app_port: int, metrics_port: int
) -> client.V1Pod:
    """The ProfilisConfig and the annotated Deployment; its one pod, once Running and
    injected, as the API server returns it."""
    spec = {
        "sidecar": {"metricsPort": metrics_port},
        "collector": {"flushIntervalSeconds": 0.05},
    }
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("loop", spec)
    )
    app = {
        "name": "app",
        "image": APP_IMAGE,
        "command": command,
        "ports": [{"name": "http", "containerPort": app_port}],
    }
    shop = deployment(SERVICE, annotations=ANNOTATIONS, containers=[app])
    kube.apps.create_namespaced_deployment(namespace, shop)
    (pod,) = kube.running_pods(namespace, f"app={SERVICE}", 1, injected=True)
    return pod


def sidecar_port(pod: client.V1Pod) -> int:
    """The port of the injected sidecar's /metrics, as the pod declares it."""
    every = [*(pod.spec.init_containers or []), *pod.spec.containers]
    names = [c.name for c in every]
    assert "profilis-agent-install" in names and "profilis-sidecar" in names, names
    (sidecar,) = [c for c in every if c.name == "profilis-sidecar"]
    (port,) = [p.container_port for p in sidecar.ports or [] if p.name == "profilis-http"]
    return int(port)


def requests_by_route(samples: Families) -> dict[str, float]:
    routes: dict[str, float] = {}
    for labels, count in samples.get("profilis_http_requests_total", []):
        routes[labels["route"]] = routes.get(labels["route"], 0) + count
    return routes


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


CASES = [
    *((name, False) for name in SERVERS),
    # The app serves on the port the config gives the sidecar (as an app exposing
    # OpenTelemetry's Prometheus port 9464 does): the sidecar moves, both run.
    ("flask-gunicorn-4-workers", True),
]


@pytest.mark.parametrize(
    ("name", "app_on_metrics_port"),
    CASES,
    ids=[name + ("-app-on-the-metrics-port" if clash else "") for name, clash in CASES],
)
def test_an_annotated_deployments_pod_runs_and_its_requests_reach_metrics(
    kube: Kube,
    operator: LocalOperator,
    namespace: str,
    name: str,
    app_on_metrics_port: bool,
    tmp_path: Path,
) -> None:
    server = SERVERS[name]
    app_port = free_port()
    configured = app_port if app_on_metrics_port else free_port()
    pod = deploy(kube, namespace, server.command(app_port), app_port, configured)
    assert "profilis.io/status" in pod.metadata.annotations
    metrics_port = sidecar_port(pod)
    assert metrics_port != app_port
    if not app_on_metrics_port:
        assert metrics_port == configured

    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(kube.api.sanitize_for_serialization(pod)))
    images = tmp_path / "images.yaml"
    images.write_text(yaml.safe_dump(IMAGES))
    argv = [sys.executable, "-m", "profilis_operator.podrun", str(pod_file)]
    argv += ["--images", str(images)]
    # run_process stops podrun's process group however the block ends; podrun stops the
    # containers it started when it gets SIGTERM.
    with run_process(argv, port=app_port, ready_timeout=60) as podrun:
        paths = [f"/orders/{ORDER_IDS[n % len(ORDER_IDS)]}" for n in range(REQUESTS)]
        with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as http:
            answers = [http.get(path) for path in paths]
        assert [a.status_code for a in answers] == [200] * REQUESTS
        assert [a.json()["order"] for a in answers] == [int(p.rsplit("/", 1)[1]) for p in paths]

        samples = wait_for(
            lambda: scrape(metrics_port),
            lambda s: value(s, "profilis_http_requests_total") >= REQUESTS,
            f"{REQUESTS} requests counted in the sidecar's /metrics",
        )
        # Every request under its template, none under a raw path such as /orders/7.
        assert requests_by_route(samples) == {server.route: REQUESTS}
        served = value(
            samples,
            "profilis_http_requests_total",
            route=server.route,
            method="GET",
            status="200",
            service=SERVICE,
        )
        assert served == REQUESTS
        assert value(samples, "profilis_events_dropped_total") == 0
        wait_for(
            lambda: value(scrape(metrics_port), "profilis_sidecar_workers"),
            lambda workers: workers == server.workers,
            f"{server.workers} live workers in profilis_sidecar_workers (never the master)",
        )

        podrun.signal(signal.SIGTERM)
        assert podrun.proc.wait(30) == 0, podrun.output()[-3000:]
    assert not listening(app_port) and not listening(metrics_port), "a container outlived podrun"
