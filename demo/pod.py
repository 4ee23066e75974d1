"""The operator's part of the demo: the sample Deployment's pod, injected, then run locally.

``inject_pod`` calls the operator's real injection function (``profilis_operator.injection``),
exactly what its admission webhook calls when the pod is created; ``run_pod`` hands the
patched pod to the operator's pod runner (``python -m profilis_operator.podrun``), which runs
the init container (agent install), the native sidecar and gunicorn as local processes.
Neighbours: ``demo.__main__`` calls both; ``demo.summary`` reads the ports found here.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from demo.processes import DemoError, Process
from profilis.k8s import METRICS_PORT_NAME, SIDECAR_CONTAINER_NAME
from profilis_operator.effective_config import resolve
from profilis_operator.injection import ClusterCapabilities, inject

__all__ = [
    "APP_DIR",
    "BACKPRESSURE",
    "DEPLOYMENT",
    "Backpressure",
    "PodPorts",
    "inject_pod",
    "pod_from_deployment",
    "pod_ports",
    "run_pod",
]

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "examples" / "demo"
DEPLOYMENT = APP_DIR / "deployment.yaml"
# The image table for the pod runner: the shop's image is its source folder run with this
# virtualenv (gunicorn, Flask, SQLAlchemy), as `docker build examples/demo` would package it.
_SHOP_IMAGE = "profilis-demo-shop"


@dataclass(frozen=True)
class Backpressure:
    """``make demo BACKPRESSURE=1``: the real sidecar throttled, the shop's agents unchanged.

    The sidecar reads at most ``ingest_rate_limit`` datagrams a second
    (``PROFILIS_SIDECAR_INGEST_RATE_LIMIT``, set on its container as ``kubectl set env``
    would), so at most 2 x 16 = 32 events a second get through while the demo's traffic
    (60 requests/s, ~1.8 events each) makes ~110: the agents keep their batches and their
    queues fill. The queue is made small through the pod's ProfilisConfig
    (``collector.queueSize``, ``collector.batchMax``), so each worker's queue passes 90% within
    about 20-30 s instead of minutes. /metrics keeps answering, so Prometheus sees the depth.
    """

    ingest_rate_limit: float = 2.0
    queue_size: int = 256
    batch_max: int = 16


BACKPRESSURE = Backpressure()


@dataclass(frozen=True)
class PodPorts:
    """Where the running pod answers on 127.0.0.1."""

    app: int
    metrics: int


def pod_from_deployment(deployment: Mapping[str, Any], *, app_port: int) -> dict[str, Any]:
    """The pod the Deployment's ReplicaSet would create, its app listening on ``app_port``.

    The port goes through the container's own ``PORT`` variable (its command says
    ``--bind 0.0.0.0:$(PORT)``), so a busy 8000 on this machine does not stop the demo.
    """
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = deployment["metadata"]
    annotations = dict(template["metadata"].get("annotations") or {})
    # What the operator copies onto the pod template of an opted-in Deployment.
    annotations.update(
        {
            k: v
            for k, v in (metadata.get("annotations") or {}).items()
            if k.startswith("profilis.io/")
        }
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{metadata['name']}-7d4b9c6f5-demo1",
            "namespace": metadata.get("namespace", "default"),
            "labels": dict(template["metadata"].get("labels") or {}),
            "annotations": annotations,
        },
        "spec": template["spec"],
    }
    for item in pod["spec"]["containers"][0].setdefault("env", []):
        if item.get("name") == "PORT":
            item["value"] = str(app_port)
    return pod


def inject_pod(
    pod: Mapping[str, Any], *, metrics_port: int, backpressure: Backpressure | None = None
) -> tuple[dict[str, Any], str]:
    """The pod as the webhook admits it (the operator's patch applied), and what it did.

    The config is the operator's defaults with the sidecar's metrics port moved when 9464 is
    taken here; native sidecars, as on Kubernetes 1.29+. With ``backpressure``, the config
    also has its small queue, and the sidecar container its ingest-rate limit.
    """
    spec: dict[str, Any] = {"sidecar": {"metricsPort": metrics_port}}
    if backpressure is not None:
        spec["collector"] = {
            "queueSize": backpressure.queue_size,
            "batchMax": backpressure.batch_max,
        }
    config = resolve(spec)
    injection = inject(pod, config, ClusterCapabilities(native_sidecars=True))
    if not injection.injected:
        raise DemoError(f"the operator did not inject the demo pod: {injection.message}")
    patched: dict[str, Any] = jsonpatch.apply_patch(dict(pod), injection.patch)
    if backpressure is not None:
        sidecar = _sidecar_container(patched)
        sidecar.setdefault("env", []).append(
            {
                "name": "PROFILIS_SIDECAR_INGEST_RATE_LIMIT",
                "value": f"{backpressure.ingest_rate_limit:g}",
            }
        )
    return patched, injection.message


def _sidecar_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    spec = pod["spec"]
    container: dict[str, Any] = next(
        c
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        if c["name"] == SIDECAR_CONTAINER_NAME
    )
    return container


def pod_ports(pod: Mapping[str, Any]) -> PodPorts:
    spec = pod["spec"]
    app = spec["containers"][0]
    env = {item["name"]: item.get("value") for item in app.get("env", [])}
    sidecar = _sidecar_container(pod)
    metrics = next(p for p in sidecar["ports"] if p["name"] == METRICS_PORT_NAME)
    return PodPorts(app=int(env["PORT"]), metrics=int(metrics["containerPort"]))


def run_pod(pod: Mapping[str, Any], workdir: Path) -> Process:
    """Start the operator's pod runner on ``pod``; its containers' output goes to pod.log."""
    pod_file = workdir / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(dict(pod), sort_keys=False))
    images_file = workdir / "images.yaml"
    images = {_SHOP_IMAGE: {"path": [str(Path(sys.executable).parent)], "workdir": str(APP_DIR)}}
    images_file.write_text(yaml.safe_dump(images))
    argv = [sys.executable, "-m", "profilis_operator.podrun", str(pod_file)]
    argv += ["--images", str(images_file), "--name", pod["metadata"]["name"]]
    return Process.start("pod runner", argv, workdir / "pod.log")
