"""The demo app the kind suite deploys, checked here without Docker.

First served by gunicorn exactly as its image's command serves it; then as the webhook would
instrument its pod: the operator's own ``inject`` patches the demo Deployment's pod template
and ``python -m profilis_operator.podrun`` runs the patched pod as local processes (agent installer,
native sidecar, app), so the kind suite's central assertion — every request sent to the app
counted once in the sidecar's /metrics, across gunicorn's workers — runs on every machine.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from profilis.k8s import SIDECAR_CONTAINER_NAME
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.injection import ClusterCapabilities, inject
from tests.e2e.conftest import DEMO_DIR, DEMO_IMAGE
from tests.e2e.test_kind import request_count
from tests.support.processes import free_port, run_process

REQUESTS = 30


def dockerfile_command(port: int) -> list[str]:
    """The demo image's CMD, bound to 127.0.0.1:port instead of 0.0.0.0:8000."""
    lines = (DEMO_DIR / "Dockerfile").read_text().splitlines()
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    argv: list[str] = json.loads(cmd.removeprefix("CMD "))
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    return argv


def demo_pod(app_port: int) -> dict[str, Any]:
    """A pod of examples/demo-app/k8s.yaml's Deployment, as its ReplicaSet would create it."""
    deployment = next(yaml.safe_load_all((DEMO_DIR / "k8s.yaml").read_text()))
    template = copy.deepcopy(deployment["spec"]["template"])
    (app,) = template["spec"]["containers"]
    assert app["image"] == DEMO_IMAGE, "the kind suite loads the demo image under this name"
    # Images carry no entrypoint outside a container runtime: spell out the image's CMD.
    app["command"] = dockerfile_command(app_port)
    # The /tmp emptyDir serves the read-only root filesystem in a cluster; locally /tmp is
    # writable, and podrun (whose volume root lives under /tmp) would rewrite its own paths
    # a second time through a mount at /tmp.
    app["volumeMounts"] = [m for m in app["volumeMounts"] if m["mountPath"] != "/tmp"]
    template["spec"]["volumes"] = [v for v in template["spec"]["volumes"] if v["name"] != "tmp"]
    metadata = {"generateName": "demo-5d8f7b9c4-", "namespace": "demo", **template["metadata"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def test_the_demo_app_serves_under_gunicorn() -> None:
    port = free_port()
    argv = dockerfile_command(port)
    assert argv[0] == "gunicorn"
    with run_process([sys.executable, "-m", *argv], port=port, cwd=DEMO_DIR):
        assert '"item":"tea"' in http_get(f"http://127.0.0.1:{port}/orders/2").replace(" ", "")
        with pytest.raises(urllib.error.HTTPError) as missing:
            http_get(f"http://127.0.0.1:{port}/orders/99")
        assert missing.value.code == 404
        missing.value.close()


@pytest.mark.slow
def test_the_injected_demo_pod_counts_every_request(tmp_path: Path) -> None:
    app_port, metrics_port = free_port(), free_port()
    pod = demo_pod(app_port)
    config = InjectionConfig(metrics_port=metrics_port)
    injection = inject(pod, config, ClusterCapabilities(native_sidecars=True))
    assert injection.injected, injection.message
    patched = jsonpatch.apply_patch(pod, injection.patch)
    assert any(c["name"] == SIDECAR_CONTAINER_NAME for c in patched["spec"]["initContainers"])
    pod_file, images_file = tmp_path / "pod.yaml", tmp_path / "images.yaml"
    pod_file.write_text(yaml.safe_dump(patched))
    images_file.write_text(yaml.safe_dump({DEMO_IMAGE: {"workdir": str(DEMO_DIR)}}))
    argv = [sys.executable, "-m", "profilis_operator.podrun", str(pod_file)]
    with run_process([*argv, "--images", str(images_file)], port=app_port, ready_timeout=60):
        for i in range(REQUESTS):
            http_get(f"http://127.0.0.1:{app_port}/orders/{1 + i % 3}")
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 15
        while (counted := request_count(http_get(metrics_url))) < REQUESTS:
            assert time.monotonic() < deadline, f"only {counted} of {REQUESTS} counted"
            time.sleep(0.2)
        assert counted == REQUESTS, "every request counted exactly once, across the workers"
