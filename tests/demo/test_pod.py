"""The demo's pod: the sample Deployment through the operator's real injection function."""

from __future__ import annotations

from typing import Any

import yaml

from demo.pod import BACKPRESSURE, DEPLOYMENT, inject_pod, pod_from_deployment, pod_ports
from profilis.k8s import (
    AGENT_MOUNT_PATH,
    ANNOTATION_INJECT,
    ANNOTATION_STATUS,
    INIT_CONTAINER_NAME,
    SIDECAR_CONTAINER_NAME,
)


def _deployment() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEPLOYMENT.read_text())
    return document


def test_the_sample_deployment_opts_in_and_runs_gunicorn_with_4_workers() -> None:
    deployment = _deployment()
    assert deployment["metadata"]["annotations"][ANNOTATION_INJECT] == "true"
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["gunicorn", "--workers", "4"]


def test_injection_adds_the_agent_and_a_native_sidecar_on_the_chosen_ports() -> None:
    pod = pod_from_deployment(_deployment(), app_port=18000)
    patched, message = inject_pod(pod, metrics_port=19464)
    spec = patched["spec"]
    assert [c["name"] for c in spec["initContainers"]] == [
        INIT_CONTAINER_NAME,
        SIDECAR_CONTAINER_NAME,
    ]
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["PYTHONPATH"].split(":")[0] == AGENT_MOUNT_PATH
    assert env["PROFILIS_EXPORTERS"] == "collector"
    assert ANNOTATION_STATUS in patched["metadata"]["annotations"]
    assert pod_ports(patched).app == 18000
    assert pod_ports(patched).metrics == 19464
    assert "shop" in message
    sidecar_env = {e["name"] for e in spec["initContainers"][1].get("env", [])}
    assert "PROFILIS_SIDECAR_INGEST_RATE_LIMIT" not in sidecar_env  # unlimited by default
    # The input pod is the webhook's request: left as it was.
    assert ANNOTATION_STATUS not in pod["metadata"]["annotations"]


def test_backpressure_throttles_the_real_sidecar_and_shrinks_the_agents_queue() -> None:
    pod = pod_from_deployment(_deployment(), app_port=18000)
    patched, _ = inject_pod(pod, metrics_port=19464, backpressure=BACKPRESSURE)
    spec = patched["spec"]
    sidecar = spec["initContainers"][1]
    sidecar_env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert (
        float(sidecar_env["PROFILIS_SIDECAR_INGEST_RATE_LIMIT"]) == BACKPRESSURE.ingest_rate_limit
    )
    app_env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    # Through the ProfilisConfig's collector section, as the operator injects it.
    assert app_env["PROFILIS_QUEUE_SIZE"] == str(BACKPRESSURE.queue_size)
    assert app_env["PROFILIS_BATCH_MAX"] == str(BACKPRESSURE.batch_max)
    # Only the shop's own containers: no extra agents.
    assert [c["name"] for c in spec["containers"]] == ["shop"]
    # The sidecar drains less than the demo's traffic makes (60 requests/s, >= 1 event each).
    assert BACKPRESSURE.ingest_rate_limit * BACKPRESSURE.batch_max < 60
