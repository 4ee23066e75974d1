"""Pods users have every day, created through Deployments on the real control plane: each one
ends as a valid injected pod or as a clean skip with a reason (annotation, Event, metric) —
never a pod the API server refuses or one that cannot start.

The controller-manager creates the pods, so a refusal shows the way a user sees it: a
``FailedCreate`` Event on the ReplicaSet and no pod. Values that reach the sidecar's argv are
checked by running that argv, read back from the API server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes import client

from profilis.config import load_config
from tests.k8s.kube import (
    APP_IMAGE,
    GROUP,
    PLURAL,
    VERSION,
    Kube,
    deployment,
    is_injected,
    profilis_config,
    wait_for,
)
from tests.k8s.operator import LocalOperator
from tests.sidecar.helpers import short_dir, status
from tests.support.processes import free_port, run_process

INJECT = {"profilis.io/inject": "true"}
RESTRICTED_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
OURS = ("profilis-agent-install", "profilis-sidecar")


def app(name: str = "app", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": APP_IMAGE,
        "command": ["gunicorn", "-w", "2", "-b", "0.0.0.0:8000", "shop:app"],
        **more,
    }


def create(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    pod_spec: Mapping[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    annotations: Mapping[str, str] = INJECT,
) -> client.V1Pod:
    """Create the Deployment; its one pod once it exists, or AssertionError with the
    ReplicaSet's FailedCreate message (what the API server answered)."""
    # Opted in on the template, as a user may: the first pod is already the one to judge
    # (the operator leaves a template annotated by hand as it is: no rollout follows).
    body = deployment(name, template_annotations=annotations, containers=containers or [app()])
    body["spec"]["template"]["spec"].update(pod_spec or {})
    kube.apps.create_namespaced_deployment(namespace, body)

    def outcome() -> tuple[list[client.V1Pod], list[str]]:
        refused = [e.message for e in kube.events(namespace, "FailedCreate")]
        pods = [
            p
            for p in kube.pods(namespace, f"app={name}")
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp
        ]
        return pods, refused

    pods, refused = wait_for(
        outcome, lambda o: bool(o[0] or o[1]), f"a pod of {name}, or a refusal"
    )
    assert not refused, f"the API server refused the pod: {refused[0]}"
    (pod,) = pods
    return pod


def by_name(pod: client.V1Pod) -> dict[str, client.V1Container]:
    return {c.name: c for c in [*(pod.spec.init_containers or []), *pod.spec.containers]}


def env_of(container: client.V1Container) -> dict[str, Any]:
    return {e.name: e.value if e.value_from is None else e.value_from for e in container.env or []}


def assert_skipped(
    kube: Kube, operator: LocalOperator, namespace: str, pod: client.V1Pod, reason: str
) -> str:
    """The pod runs uninstrumented, and says why in the three places a user looks."""
    assert not is_injected(pod)
    assert not set(by_name(pod)) & set(OURS)
    annotation = (pod.metadata.annotations or {}).get("profilis.io/skipped", "")
    assert annotation.startswith(f"{reason}: "), annotation
    events = wait_for(
        lambda: kube.events(namespace, "ProfilisSkipped"), bool, "a ProfilisSkipped Event"
    )
    assert f"({reason})" in events[0].message
    skips = operator.metrics()
    assert skips.get(f'profilis_operator_admission_skips_total{{reason="{reason}"}}', 0) >= 1
    return annotation


# --- skips: the pod runs as the user wrote it ---------------------------------------------


def test_a_windows_pod_is_skipped_not_refused(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: 422 "spec.initContainers[1].securityContext.runAsGroup: Forbidden: cannot be
    # set for a windows pod" — every Windows workload of an opted-in namespace broke.
    pod = create(kube, namespace, "iis", pod_spec={"os": {"name": "windows"}})
    message = assert_skipped(kube, operator, namespace, pod, "windows-pod")
    assert "Windows" in message


def test_a_pod_on_the_host_network_is_skipped(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    pod = create(kube, namespace, "node-agent", pod_spec={"hostNetwork": True})
    assert_skipped(kube, operator, namespace, pod, "host-network")


def test_a_quota_the_sidecar_would_exceed_skips_the_pod(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # The app alone fits exactly; with the injected containers it would not.
    quota = {
        "metadata": {"name": "tight"},
        "spec": {"hard": {"requests.cpu": "100m", "limits.cpu": "200m", "pods": "5"}},
    }
    kube.core.create_namespaced_resource_quota(namespace, quota)
    resources = {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}
    pod = create(kube, namespace, "shop", containers=[app(resources=resources)])
    message = assert_skipped(kube, operator, namespace, pod, "resource-quota")
    assert "tight" in message and "requests.cpu" in message


def test_a_limit_range_minimum_skips_and_a_profilisconfig_fixes_it(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    limits = {
        "metadata": {"name": "floor"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "50m", "memory": "64Mi"}}]},
    }
    kube.core.create_namespaced_limit_range(namespace, limits)
    pod = create(kube, namespace, "shop", containers=[app(resources={"requests": {"cpu": "100m"}})])
    message = assert_skipped(kube, operator, namespace, pod, "limit-range")
    assert "floor" in message and "resources" in message

    enough = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    spec = {"sidecar": {"resources": enough}, "agent": {"resources": enough}}
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("roomy", spec)
    )
    annotations = {**INJECT, "profilis.io/config": "roomy"}
    pod = create(
        kube,
        namespace,
        "roomy",
        containers=[app(resources={"requests": {"cpu": "100m"}})],
        annotations=annotations,
    )
    assert is_injected(pod)


def test_a_pythonpath_from_a_secret_is_kept_behind_the_agent(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: skipped (no-target-container), the app ran uninstrumented.
    source = {"secretKeyRef": {"name": "paths", "key": "pythonpath", "optional": True}}
    env = [{"name": "PYTHONPATH", "valueFrom": source}, {"name": "MODE", "value": "web"}]
    pod = create(kube, namespace, "shop", containers=[app(env=env)])
    assert is_injected(pod)
    names = [e.name for e in by_name(pod)["app"].env]
    assert names.index("PROFILIS_APP_PYTHONPATH") < names.index("PYTHONPATH")
    env_now = env_of(by_name(pod)["app"])
    assert env_now["PYTHONPATH"] == "/profilis-agent:$(PROFILIS_APP_PYTHONPATH)"
    assert env_now["PROFILIS_APP_PYTHONPATH"].secret_key_ref.name == "paths"


# --- injected: the pod is valid and its containers start --------------------------------


def test_quotas_on_cpu_and_memory_requests_and_limits_admit_the_injected_pod(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: 403 "must specify limits.cpu for: profilis-agent-install,profilis-sidecar".
    hard = {
        "requests.cpu": "2",
        "requests.memory": "2Gi",
        "limits.cpu": "4",
        "limits.memory": "4Gi",
    }
    kube.core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "team"}, "spec": {"hard": hard}}
    )
    resources = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    pod = create(kube, namespace, "shop", containers=[app(resources=resources)])
    assert is_injected(pod)
    for name in OURS:
        given = by_name(pod)[name].resources
        assert set(given.requests) == {"cpu", "memory"}, name
        assert set(given.limits) == {"cpu", "memory"}, name


def test_a_limit_range_with_defaults_and_maximums_admits_the_injected_pod(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    limits = {
        "metadata": {"name": "defaults"},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "max": {"cpu": "2", "memory": "1Gi"},
                    "maxLimitRequestRatio": {"cpu": "50"},
                }
            ]
        },
    }
    kube.core.create_namespaced_limit_range(namespace, limits)
    pod = create(kube, namespace, "shop")
    assert is_injected(pod)
    # LimitRanger gave the app its defaults; ours brought their own.
    assert by_name(pod)["app"].resources.limits == {"cpu": "500m", "memory": "256Mi"}


def test_a_restricted_pod_security_namespace_admits_the_injected_pod(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    kube.core.patch_namespace(namespace, {"metadata": {"labels": labels}})
    pod = create(kube, namespace, "shop", containers=[app(securityContext=RESTRICTED_CONTEXT)])
    assert is_injected(pod)


@pytest.mark.parametrize(
    ("image_user", "context"),
    [("root", {"runAsUser": 0}), ("non-root", {"runAsNonRoot": True, "runAsUser": 10001})],
)
def test_the_app_keeps_its_user_and_ours_run_as_non_root(
    kube: Kube, operator: LocalOperator, namespace: str, image_user: str, context: dict[str, Any]
) -> None:
    pod = create(kube, namespace, image_user, pod_spec={"securityContext": context})
    assert is_injected(pod)
    assert by_name(pod)["app"].security_context is None
    for name in OURS:
        ours = by_name(pod)[name].security_context
        assert (ours.run_as_user, ours.run_as_non_root) == (65532, True)


def test_an_app_port_on_9464_moves_the_sidecar_to_a_free_port(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: injected on 9464 as well; the native sidecar took the port first and the
    # app died with EADDRINUSE.
    ports = [{"name": "http", "containerPort": 8000}, {"name": "otel", "containerPort": 9464}]
    pod = create(kube, namespace, "shop", containers=[app(ports=ports)])
    assert is_injected(pod)
    sidecar = by_name(pod)["profilis-sidecar"]
    ((name, port),) = [(p.name, p.container_port) for p in sidecar.ports]
    assert name == "profilis-http" and port not in (8000, 9464)
    assert f"--metrics-port={port}" in sidecar.command
    assert json.loads(pod.metadata.annotations["profilis.io/status"])["metricsPort"] == port


def test_a_service_name_starting_with_a_dash_reaches_the_sidecar_intact(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: "--service -checkout": the sidecar exited 2 and the app never started.
    port = free_port()
    spec = {"serviceName": "-checkout", "sidecar": {"metricsPort": port}}
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("checkout", spec)
    )
    pod = create(kube, namespace, "checkout")
    assert is_injected(pod)
    command = by_name(pod)["profilis-sidecar"].command
    assert "--service=-checkout" in command
    # The argv as stored, run here (socket in a short temp dir, loopback): it starts, and
    # its status page shows the service name it was given.
    with short_dir() as directory:
        argv = [
            part.replace("/var/run/profilis", str(directory)).replace("0.0.0.0", "127.0.0.1")
            for part in command[1:]
        ]
        with run_process([sys.executable, "-m", "profilis_sidecar", *argv], port=port):
            assert status(port)["sidecar"]["service"] == "-checkout"


def test_profilis_values_from_envfrom_win_and_no_pod_identity_is_added(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    # Before: the injected env overrode PROFILIS_SAMPLE_RATE from the ConfigMap, and the
    # app got POD_NAME and POD_NAMESPACE it never asked for.
    data = {"PROFILIS_SAMPLE_RATE": "0.1", "PROFILIS_SERVICE_NAME": "from-configmap"}
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "shop-env"}, "data": data}
    )
    container = app(envFrom=[{"configMapRef": {"name": "shop-env"}}])
    pod = create(kube, namespace, "shop", containers=[container])
    assert is_injected(pod)
    env = env_of(by_name(pod)["app"])
    assert not {"POD_NAME", "POD_NAMESPACE"} & set(env)
    assert all(name == "PYTHONPATH" or name.startswith("PROFILIS_") for name in env)
    # The environment the kubelet builds: envFrom first, then env on top.
    seen = {**data, **{k: v for k, v in env.items() if isinstance(v, str)}}
    config = load_config(seen)
    assert config.sample_rate == 0.1 and config.service_name == "from-configmap"
    assert config.collector_address.path == "/var/run/profilis/collector.sock"
    assert config.exporters == ("collector",)


def test_an_app_with_its_own_init_containers_runs_them_first(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    migrate = {"name": "migrate", "image": APP_IMAGE, "command": ["python", "manage.py"]}
    pod = create(kube, namespace, "shop", pod_spec={"initContainers": [migrate]})
    assert is_injected(pod)
    assert [c.name for c in pod.spec.init_containers] == ["migrate", *OURS]


def test_a_shared_process_namespace_pod_is_injected(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    pod = create(kube, namespace, "shop", pod_spec={"shareProcessNamespace": True})
    assert is_injected(pod) and pod.spec.share_process_namespace


def test_a_pod_of_100_containers_is_injected_into_each_named_one(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    containers = [app(f"c{i}") for i in range(100)]
    names = ",".join(c["name"] for c in containers)
    annotations = {**INJECT, "profilis.io/container-names": names}
    pod = create(kube, namespace, "big", containers=containers, annotations=annotations)
    instrumented = [
        c.name
        for c in pod.spec.containers
        if env_of(c).get("PYTHONPATH", "").startswith("/profilis-agent")
    ]
    assert len(instrumented) == 100
    assert json.loads(pod.metadata.annotations["profilis.io/status"])["containers"][-1] == "c99"


def test_a_pod_with_pod_level_resources_is_skipped_not_refused(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    budget = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    pod = create(
        kube,
        namespace,
        "budgeted",
        pod_spec={"resources": budget},
        containers=[app(resources={"requests": {"cpu": "100m", "memory": "128Mi"}})],
    )
    assert_skipped(kube, operator, namespace, pod, "pod-level-resources")
