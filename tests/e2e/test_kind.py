"""End to end on kind: install the chart, annotate a gunicorn Flask app, see its requests in
the sidecar's /metrics, remove the annotation, see plain pods again.

Needs Docker, kind and kubectl (see conftest.py); one ordered scenario, since each step
stands on the cluster state the previous one left.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from profilis.k8s import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_INJECT,
    ANNOTATION_STATUS,
    METRICS_PORT_NAME,
    SIDECAR_CONTAINER_NAME,
)
from tests.e2e.conftest import DEMO_DIR, RELEASE_NAMESPACE
from tests.e2e.kind import Cluster, port_forward, wait_until

NAMESPACE = "profilis-e2e-demo"
SELECTOR = "app.kubernetes.io/name=demo"
APP_PORT, METRICS_PORT = 8000, 9464
REQUESTS = 40


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    spec = pod["spec"]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        if container["name"] == SIDECAR_CONTAINER_NAME:
            return container  # type: ignore[no-any-return]
    return None


def template_annotations(cluster: Cluster) -> dict[str, str]:
    deployment = cluster.kubectl_json("get", "deployment", "demo", "-n", NAMESPACE)
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"].get("annotations")
    return annotations or {}


def rolled_out(cluster: Cluster) -> list[dict[str, Any]]:
    cluster.kubectl("rollout", "status", "deployment/demo", "-n", NAMESPACE, "--timeout=300s",
                    timeout=320)  # fmt: skip
    # Old pods may still be terminating right after the rollout: wait for one generation.
    return wait_until(  # type: ignore[no-any-return]
        "the demo's pods to be one generation",
        lambda: (
            (pods := cluster.current_pods(NAMESPACE, SELECTOR))
            and len({p["metadata"]["labels"].get("pod-template-hash") for p in pods}) == 1
            and pods
        ),
        timeout=120,
    )


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def request_count(metrics_text: str) -> float:
    """profilis_http_requests_total summed over the /orders route's series."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "profilis_http_requests_total" and "orders" in sample.labels.get(
                "route", ""
            ):
                total += sample.value
    return total


@pytest.fixture
def demo_namespace(cluster: Cluster) -> Iterator[str]:
    cluster.kubectl("create", "namespace", NAMESPACE)
    try:
        yield NAMESPACE
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


@pytest.mark.timeout(2400)
def test_annotate_inject_count_and_remove(
    cluster: Cluster, release: str, demo_namespace: str
) -> None:
    # The chart's own check first: the webhook answers through its Service.
    cluster.helm("test", release, "--namespace", RELEASE_NAMESPACE, "--timeout", "3m")
    cluster.kubectl("apply", "-n", demo_namespace, "-f", DEMO_DIR / "k8s.yaml")
    (pod,) = rolled_out(cluster)
    assert sidecar_of(pod) is None, "not annotated yet: the pod must be left alone"

    cluster.kubectl("annotate", "deployment/demo", "-n", NAMESPACE, f"{ANNOTATION_INJECT}=true")
    # The operator copies the opt-in onto the pod template (with the config hash): a rollout.
    wait_until(
        "the operator to annotate the pod template",
        lambda: template_annotations(cluster).get(ANNOTATION_CONFIG_HASH),
        timeout=120,
    )
    (pod,) = rolled_out(cluster)
    sidecar = sidecar_of(pod)
    assert sidecar is not None, json.dumps(pod["spec"], indent=1)
    assert {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT}.items() <= (
        sidecar["ports"][0].items()
    )
    status = json.loads(pod["metadata"]["annotations"][ANNOTATION_STATUS])
    assert status["containers"] == ["app"]

    name = pod["metadata"]["name"]
    with port_forward(cluster, NAMESPACE, name, [APP_PORT, METRICS_PORT]) as local:
        for i in range(REQUESTS):
            code, _ = http_get(f"http://127.0.0.1:{local[APP_PORT]}/orders/{1 + i % 3}")
            assert code == 200
        metrics_url = f"http://127.0.0.1:{local[METRICS_PORT]}/metrics"
        # Agents flush every 0.1 s; the deadline covers a slow CI node.
        counted = wait_until(
            f"{REQUESTS} requests in the sidecar's /metrics",
            lambda: (n := request_count(http_get(metrics_url)[1])) >= REQUESTS and n,
            timeout=60,
            every=1,
        )
        assert counted == REQUESTS, "every request counted exactly once, across the workers"

    cluster.kubectl("annotate", "deployment/demo", "-n", NAMESPACE, f"{ANNOTATION_INJECT}-")
    wait_until(
        "the operator to clear the pod template",
        lambda: ANNOTATION_CONFIG_HASH not in template_annotations(cluster),
        timeout=120,
    )
    (pod,) = rolled_out(cluster)
    assert sidecar_of(pod) is None, "the next pods must be plain again"
    assert ANNOTATION_STATUS not in (pod["metadata"].get("annotations") or {})
