"""``inject`` on the shapes that used to break pods: the sidecar's port, its argv, the values
that reach it, Windows pods, and the settings a container's envFrom gives. (The same shapes
run on a real API server in tests/k8s/test_pod_shapes.py.)"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from profilis.config import load_config
from profilis_operator.effective_config import resolve
from profilis_operator.errors import InvalidConfigError
from profilis_operator.injection import ClusterCapabilities, Injection, inject
from profilis_sidecar.cli import build_parser, settings_from_args
from tests.operator import pods

NATIVE = ClusterCapabilities(native_sidecars=True)


def injected(original: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    injection = inject(original, resolve(spec or {}), NATIVE)
    assert injection.injected, injection.message
    return jsonpatch.apply_patch(copy.deepcopy(original), injection.patch)  # type: ignore[no-any-return]


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["initContainers"] if c["name"] == "profilis-sidecar")


def with_ports(*numbers: int) -> dict[str, Any]:
    pod = pods.pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": n} for n in numbers]
    return pod


def test_the_sidecar_keeps_the_configured_port_when_the_pod_leaves_it_free() -> None:
    pod = injected(with_ports(8000))
    assert sidecar_of(pod)["ports"][0]["containerPort"] == 9464
    assert json.loads(pod["metadata"]["annotations"]["profilis.io/status"])["metricsPort"] == 9464


def test_the_sidecar_moves_above_every_port_the_pod_declares() -> None:
    original = with_ports(9464, 9465)
    original["spec"]["initContainers"] = [
        {"name": "proxy", "image": "envoy:1", "ports": [{"containerPort": 9466}]}
    ]
    pod = injected(original)
    sidecar = sidecar_of(pod)
    assert sidecar["ports"] == [{"name": "profilis-http", "containerPort": 9467, "protocol": "TCP"}]
    assert "--metrics-port=9467" in sidecar["command"]


def test_a_pod_that_takes_every_nearby_port_is_skipped_with_the_range() -> None:
    outcome = inject(with_ports(*range(9464, 9565)), resolve({}), NATIVE)
    assert (outcome.reason, outcome.patch) == ("metrics-port-taken", [])
    assert "9464" in outcome.message and "9564" in outcome.message


@pytest.mark.parametrize("service", ["-checkout", "--help", "a b", "x=y"])
def test_every_argv_value_reaches_the_sidecar_as_written(service: str) -> None:
    spec = {
        "serviceName": service,
        "exporters": {"enabled": ["otlp"], "otlpEndpoint": "https://otel.example:4318"},
    }
    command = sidecar_of(injected(pods.pod(), spec))["command"]
    assert all(part.startswith("--") and "=" in part for part in command[1:])
    # The sidecar's own parser reads what the pod says.
    settings = settings_from_args(build_parser().parse_args(command[1:]), {})
    assert settings.service == service
    assert settings.metrics_port == 9464


@pytest.mark.parametrize("service", ["", "line\nbreak", "tab\there", "x" * 256])
def test_a_service_name_that_cannot_be_a_label_is_refused_naming_the_field(service: str) -> None:
    with pytest.raises(InvalidConfigError, match="serviceName"):
        resolve({"serviceName": service})


def test_a_request_above_its_limit_is_refused_naming_the_field() -> None:
    resources = {"requests": {"cpu": "1"}, "limits": {"cpu": "500m"}}
    with pytest.raises(InvalidConfigError, match=r"sidecar\.resources\.requests\.cpu"):
        resolve({"sidecar": {"resources": resources}})


def test_the_injected_containers_set_requests_and_limits_of_cpu_and_memory() -> None:
    pod = injected(pods.pod())
    for container in pod["spec"]["initContainers"][-2:]:
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]


@pytest.mark.parametrize(
    "changes", [{"os": {"name": "windows"}}, {"nodeSelector": {"kubernetes.io/os": "windows"}}]
)
def test_windows_pods_are_skipped(changes: dict[str, Any]) -> None:
    outcome: Injection = inject(pods.pod(**changes), resolve({}), NATIVE)
    assert (outcome.reason, outcome.patch) == ("windows-pod", [])


def test_settings_go_under_what_envfrom_gives_and_apps_get_no_pod_identity() -> None:
    original = pods.pod()
    app = original["spec"]["containers"][0]
    app["envFrom"] = [{"configMapRef": {"name": "shop-env"}}]
    app["env"] = [{"name": "PROFILIS_REDACT", "value": "false"}]
    env = {e["name"]: e.get("value") for e in injected(original)["spec"]["containers"][0]["env"]}
    assert set(env) == {"PROFILIS_REDACT", "PYTHONPATH", "PROFILIS_DEFAULTS"}
    from_config_map = {"PROFILIS_SAMPLE_RATE": "0.2"}
    # What the kubelet builds: envFrom first, env on top, then the agent reads it.
    seen = {**from_config_map, **{k: v for k, v in env.items() if v is not None}}
    config = load_config(seen)
    assert (config.sample_rate, config.redact) == (0.2, False)
    assert "PROFILIS_REDACT" not in json.loads(env["PROFILIS_DEFAULTS"])  # the app's own wins
