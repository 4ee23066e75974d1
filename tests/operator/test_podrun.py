"""A patched pod runs: gunicorn (4 workers) with the injected agent, the sidecar's /metrics
shows its requests. The pod spec is patched by the same ``inject`` the webhook uses."""

from __future__ import annotations

import copy
import signal
import sys
import time
from pathlib import Path

import httpx
import jsonpatch
import pytest
import yaml

from profilis_operator.effective_config import resolve
from profilis_operator.injection import ClusterCapabilities, inject
from profilis_operator.podrun import PodRunner
from tests.operator.pods import pod
from tests.sidecar.helpers import scrape, value, wait_for
from tests.support.processes import free_port, run_process

pytestmark = pytest.mark.slow
APPS = Path(__file__).with_name("apps")
IMAGE = "registry.example/shop:1.4.2"


def patched_pod(app_port: int, metrics_port: int, native: bool) -> dict[str, object]:
    original = pod()
    original["metadata"]["name"] = "shop-7c9f8d6b54-x2x9q"
    original["spec"]["containers"][0]["command"] = [
        *("gunicorn", "--workers", "4", "--bind", f"0.0.0.0:{app_port}"),
        *("--graceful-timeout", "2", "shop:app"),
    ]
    config = resolve(
        {"sidecar": {"metricsPort": metrics_port}, "collector": {"flushIntervalSeconds": 0.05}}
    )
    injection = inject(original, config, ClusterCapabilities(native_sidecars=native))
    assert injection.injected, injection.message
    return jsonpatch.apply_patch(copy.deepcopy(original), injection.patch)  # type: ignore[no-any-return]


def test_mount_paths_env_and_network_are_mapped_locally(tmp_path: Path) -> None:
    spec = patched_pod(8000, 9464, native=True)
    runner = PodRunner(
        spec,
        {IMAGE: {"path": [str(Path(sys.executable).parent)], "workdir": str(APPS)}},
        root=tmp_path,
    )
    app = runner.containers[0]
    argv, env, cwd = runner.argv_env_cwd(app)
    assert "127.0.0.1:8000" in argv
    assert env["PYTHONPATH"] == str(tmp_path / "profilis-agent")
    assert env["PROFILIS_COLLECTOR_ADDRESS"] == f"unix://{tmp_path / 'profilis-run'}/collector.sock"
    assert not {"POD_NAME", "POD_NAMESPACE"} & set(env)  # the app gets no pod identity
    assert cwd == str(APPS)
    sidecar_argv, _, _ = runner.argv_env_cwd(runner.init_containers[-1])
    assert sidecar_argv[:3] == [sys.executable, "-m", "profilis_sidecar"]
    assert "--metrics-host=127.0.0.1" in sidecar_argv
    _, sidecar_env, _ = runner.argv_env_cwd(runner.init_containers[-1])
    assert sidecar_env["POD_NAME"] == "shop-7c9f8d6b54-x2x9q"
    assert sidecar_env["POD_NAMESPACE"] == "shop"


@pytest.mark.parametrize("registry", ["", "registry.example:5000/", "mirror.example/hub/"])
def test_the_profilis_image_runs_here_from_any_registry(tmp_path: Path, registry: str) -> None:
    spec = patched_pod(8000, 9464, native=True)
    for container in spec["spec"]["initContainers"]:
        container["image"] = f"{registry}profilis/profilis:2.0.0"
    runner = PodRunner(spec, root=tmp_path)
    installer_argv, _, _ = runner.argv_env_cwd(runner.init_containers[0])
    assert installer_argv[:3] == [sys.executable, "-m", "profilis.agent.cli"]


def test_a_volume_at_tmp_does_not_rewrite_other_mounts_twice(tmp_path: Path) -> None:
    spec = patched_pod(8000, 9464, native=True)
    spec["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}})
    app = spec["spec"]["containers"][0]
    app["volumeMounts"].append({"name": "scratch", "mountPath": "/tmp"})
    app["args"] = ["--worker-tmp-dir", "/tmp/gunicorn", "--pid=/tmpfile"]
    root = tmp_path / "tmp-root"  # itself under /tmp, as PodRunner's default root is
    runner = PodRunner(spec, root=root)
    argv, env, _ = runner.argv_env_cwd(runner.containers[0])
    assert env["PROFILIS_COLLECTOR_ADDRESS"] == f"unix://{root / 'profilis-run'}/collector.sock"
    assert argv[-3:] == ["--worker-tmp-dir", f"{root / 'scratch'}/gunicorn", "--pid=/tmpfile"]


@pytest.mark.parametrize("native", [True, False], ids=["native-sidecar", "sidecar-container"])
def test_a_patched_gunicorn_pod_reports_its_requests(tmp_path: Path, native: bool) -> None:
    app_port, metrics_port = free_port(), free_port()
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(patched_pod(app_port, metrics_port, native)))
    images = tmp_path / "images.yaml"
    images.write_text(
        yaml.safe_dump({IMAGE: {"path": [str(Path(sys.executable).parent)], "workdir": str(APPS)}})
    )
    argv = [
        sys.executable,
        "-m",
        "profilis_operator.podrun",
        str(pod_file),
        "--images",
        str(images),
    ]
    with run_process(argv, port=app_port, ready_timeout=60) as running:
        with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as client:
            for n in range(40):
                assert client.get("/hello").status_code == 200
                assert client.get(f"/items/{n}").status_code == 200
        samples = wait_for(
            lambda: scrape(metrics_port),
            lambda s: value(s, "profilis_http_requests_total") >= 80,
            timeout=20,
        )
        assert value(samples, "profilis_http_requests_total", service="shop", route="/hello") == 40
        assert value(samples, "profilis_http_requests_total", route="/items/<int:item_id>") == 40
        workers = wait_for(
            lambda: scrape(metrics_port),
            lambda s: value(s, "profilis_sidecar_workers") >= 4,
            timeout=20,
        )
        assert value(workers, "profilis_sidecar_workers") >= 4
        started = time.monotonic()
        running.signal(signal.SIGTERM)
        assert running.proc.wait(20) == 0, running.output()[-3000:]
        assert time.monotonic() - started < 15
