"""The user's path on real objects: annotate a Deployment, and the pods the controller-manager
creates are stored injected by the real API server (which calls the webhook) and turn
Running; opt in by namespace, opt out, take the annotation away, change the ProfilisConfig,
restart the operator. The operator runs with the chart's ServiceAccount token, so every call
below is one the chart's RBAC allows."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from tests.k8s.kube import GROUP, PLURAL, VERSION, Kube, deployment, profilis_config, wait_for
from tests.k8s.operator import LocalOperator

INJECT = {"profilis.io/inject": "true"}


def containers_by_name(pod: client.V1Pod) -> dict[str, client.V1Container]:
    return {c.name: c for c in [*(pod.spec.init_containers or []), *pod.spec.containers]}


def env_of(container: client.V1Container) -> dict[str, str | None]:
    return {e.name: e.value for e in container.env or []}


def test_an_annotated_deployment_gets_injected_running_pods(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.apps.create_namespaced_deployment(
        namespace, deployment("shop", annotations=INJECT, replicas=2)
    )
    pods = kube.running_pods(namespace, "app=shop", 2, injected=True)
    pod = pods[0]
    names = [c.name for c in pod.spec.init_containers]
    assert names == ["profilis-agent-install", "profilis-sidecar"]
    sidecar = containers_by_name(pod)["profilis-sidecar"]
    # Kubernetes 1.34: the sidecar is a native sidecar, and its port name is accepted.
    assert sidecar.restart_policy == "Always"
    assert [(p.name, p.container_port) for p in sidecar.ports] == [("profilis-http", 9464)]
    assert sidecar.startup_probe.http_get.port == "profilis-http"
    app = containers_by_name(pod)["app"]
    assert env_of(app)["PYTHONPATH"].startswith("/profilis-agent")
    for name in ("profilis-agent-install", "profilis-sidecar"):
        context = containers_by_name(pod)[name].security_context
        assert context.run_as_non_root and context.read_only_root_filesystem
    status = pod.metadata.annotations["profilis.io/status"]
    assert '"version"' in status
    # The ReplicaSet never failed to create a pod (the old port name failed every one).
    assert not kube.events(namespace, "FailedCreate")
    wait_for(
        lambda: kube.events(namespace, "ProfilisInjected"),
        bool,
        "a ProfilisInjected Event, posted with the chart's RBAC",
    )


def test_a_namespace_label_opts_in_and_false_opts_out(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.core.patch_namespace(
        namespace, {"metadata": {"labels": {"profilis.io/inject": "enabled"}}}
    )
    kube.apps.create_namespaced_deployment(namespace, deployment("plain"))
    opted_out = deployment("legacy", annotations={"profilis.io/inject": "false"})
    kube.apps.create_namespaced_deployment(namespace, opted_out)
    kube.running_pods(namespace, "app=plain", 1, injected=True)
    kube.running_pods(namespace, "app=legacy", 1, injected=False)
    template = kube.apps.read_namespaced_deployment("legacy", namespace).spec.template
    assert template.metadata.annotations["profilis.io/inject"] == "false"


def test_an_already_injected_pod_is_left_alone(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=INJECT))
    (injected,) = kube.running_pods(namespace, "app=shop", 1, injected=True)
    raw = kube.api.sanitize_for_serialization(injected)
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "copy-of-an-injected-pod",
            "annotations": {**raw["metadata"]["annotations"], **INJECT},
        },
        "spec": copy.deepcopy(raw["spec"]),
    }
    for key in ("nodeName",):
        again["spec"].pop(key, None)
    # Injecting twice would add a second profilis-sidecar: the API server would refuse it.
    created = kube.core.create_namespaced_pod(namespace, again)
    assert [c.name for c in created.spec.init_containers] == [
        c["name"] for c in raw["spec"]["initContainers"]
    ]
    assert (
        created.metadata.annotations["profilis.io/status"]
        == (raw["metadata"]["annotations"]["profilis.io/status"])
    )


def test_removing_the_annotation_rolls_the_pods_back(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.apps.create_namespaced_deployment(
        namespace, deployment("shop", annotations=INJECT, replicas=2)
    )
    kube.running_pods(namespace, "app=shop", 2, injected=True)
    patch = {"metadata": {"annotations": {"profilis.io/inject": None}}}
    kube.apps.patch_namespaced_deployment("shop", namespace, patch)
    kube.running_pods(namespace, "app=shop", 2, injected=False)
    template = kube.apps.read_namespaced_deployment("shop", namespace).spec.template
    assert not (template.metadata.annotations or {}).keys() & {
        "profilis.io/inject",
        "profilis.io/config-hash",
    }


def test_a_profilisconfig_change_rolls_the_pods(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("shop", {"sampling": {"rate": 0.5}})
    )
    annotations = {**INJECT, "profilis.io/config": "shop"}
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=annotations))
    (pod,) = kube.running_pods(namespace, "app=shop", 1, injected=True)
    assert env_of(containers_by_name(pod)["app"])["PROFILIS_SAMPLE_RATE"] == "0.5"

    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "shop", {"spec": {"sampling": {"rate": 0.25}}}
    )

    def rates() -> list[str | None]:
        pods = kube.pods(namespace, "app=shop")
        return [
            env_of(containers_by_name(p)["app"]).get("PROFILIS_SAMPLE_RATE")
            for p in pods
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp
        ]

    wait_for(rates, lambda r: r == ["0.25"], "the pods rolled to the new sampling rate")


def test_the_profilisconfig_status_lists_the_workloads_that_use_it(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("web", {})
    )
    kube.apps.create_namespaced_deployment(namespace, deployment("web", annotations=INJECT))

    def status() -> dict[str, Any]:
        obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
        return dict(obj.get("status") or {})

    listed = wait_for(
        status,
        lambda s: s.get("workloads") == [{"kind": "Deployment", "name": "web"}],
        "status.workloads lists the Deployment",
    )
    assert listed["workloadCount"] == 1 and listed["valid"] is True
    stored = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    # Nothing that would make deleting it wait for the operator.
    assert not stored["metadata"].get("finalizers")
    assert listed["observedGeneration"] == stored["metadata"]["generation"]
    template = kube.apps.read_namespaced_deployment("web", namespace).spec.template
    assert listed["configHash"] == template.metadata.annotations["profilis.io/config-hash"]

    optout = {"metadata": {"annotations": {"profilis.io/inject": "false"}}}
    kube.apps.patch_namespaced_deployment("web", namespace, optout)
    wait_for(status, lambda s: s.get("workloads") == [], "the opted-out Deployment unlisted")


def test_an_operator_restart_resumes_without_double_work(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("before", annotations=INJECT))
    (pod,) = kube.running_pods(namespace, "app=before", 1, injected=True)
    generation = kube.apps.read_namespaced_deployment("before", namespace).metadata.generation

    operator.stop()
    operator.start()
    # kopf lists every workload again on start; a Deployment created now is handled after
    # that listing, so once it is annotated the old one has been looked at too.
    kube.apps.create_namespaced_deployment(namespace, deployment("after", annotations=INJECT))
    kube.running_pods(namespace, "app=after", 1, injected=True)

    again = kube.apps.read_namespaced_deployment("before", namespace)
    assert again.metadata.generation == generation, "the template was patched again"
    (same,) = kube.running_pods(namespace, "app=before", 1, injected=True)
    assert same.metadata.uid == pod.metadata.uid, "the pod was replaced"
    updates = operator.metrics()
    assert updates.get('profilis_operator_workload_updates_total{kind="Deployment"}') == 1.0


def test_every_call_the_operator_made_was_allowed(operator: LocalOperator) -> None:
    """Runs last in this module: nothing the scenarios above made the operator do was
    refused by the chart's RBAC, and it survived no errors."""
    # RBAC's refusal reads 'is forbidden: User "system:serviceaccount:NS:NAME" cannot ...'
    # (other 403s, e.g. an Event for a namespace being deleted, are not about the role).
    denied = [
        line
        for line in operator.output().splitlines()
        if 'forbidden: User \\"system:serviceaccount:' in line
        or 'forbidden: User "system:serviceaccount:' in line
    ]
    assert not denied, denied[:5]
    errors = {
        k: v
        for k, v in operator.metrics().items()
        if k.startswith("profilis_operator_errors_total")
    }
    assert errors and not any(errors.values()), errors
