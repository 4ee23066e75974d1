"""Issue 16 on the real control plane: what the chart's own objects make the API server enforce.

- The ValidatingAdmissionPolicy on the operator's identity: RBAC lets it patch workloads in
  every namespace, the policy keeps it out of kube-system and limits it to the pod template's
  ``profilis.io/`` annotations. The operator runs with the chart's ServiceAccount token, so
  the policy applies to its requests for real, and so do the direct calls made here with it.
- The dashboard's token from a Secret (a ProfilisConfig with ``dashboard.tokenSecretRef``):
  the CRD accepts it strictly, the API server accepts the injected pod with the reference.
- The NetworkPolicies are valid objects for the API server. There is no CNI on this plane,
  so whether traffic is really filtered cannot be shown here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.chart.helm import CHART
from tests.k8s.kube import (
    GROUP,
    PLURAL,
    VERSION,
    HelmCli,
    Kube,
    deployment,
    profilis_config,
    wait_for,
)
from tests.k8s.operator import LocalOperator

INJECT = {"profilis.io/inject": "true"}


def template_annotations(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    found = kube.apps.read_namespaced_deployment(name, namespace)
    return dict(found.spec.template.metadata.annotations or {})


@pytest.fixture
def as_operator(operator: LocalOperator) -> Iterator[client.AppsV1Api]:
    """The apps API with the operator's own ServiceAccount token (the file it runs with)."""
    api = config.new_client_from_config(config_file=str(operator.workdir / "operator.kubeconfig"))
    try:
        yield client.AppsV1Api(api)
    finally:
        api.close()


@pytest.fixture
def system_deployment(kube: Kube) -> Iterator[str]:
    """An opted-in Deployment in kube-system, deleted afterwards."""
    name = f"opted-in-{uuid.uuid4().hex[:6]}"
    kube.apps.create_namespaced_deployment("kube-system", deployment(name, annotations=INJECT))
    yield name
    kube.apps.delete_namespaced_deployment(name, "kube-system")


def test_the_operator_leaves_opted_in_workloads_of_kube_system_alone(
    kube: Kube, operator: LocalOperator, namespace: str, system_deployment: str
) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=INJECT))
    wait_for(
        lambda: template_annotations(kube, namespace, "shop").get("profilis.io/config-hash"),
        bool,
        "the operator annotating an ordinary namespace's workload (the policy allows it)",
    )
    left_alone = f"leaving deployments kube-system/{system_deployment} alone"
    wait_for(
        operator.output, lambda text: left_alone in text, "the operator passing over kube-system"
    )
    assert "profilis.io/inject" not in template_annotations(kube, "kube-system", system_deployment)
    # It did not even try: the guard below would have refused it, as an error.
    assert f"kube-system/{system_deployment}" not in operator.output().replace(left_alone, "")
    policy = kube.admission.read_validating_admission_policy("profilis-workload-guard")
    # The API server type-checked every expression against the three workload kinds.
    checking = policy.status.type_checking if policy.status else None
    assert not (checking and checking.expression_warnings), checking


def denied(call: Any) -> str:
    """The API server's refusal of ``call`` (AssertionError if it was allowed)."""
    try:
        call()
    except ApiException as exc:
        assert exc.status in (403, 422), exc
        return str(exc.body)
    raise AssertionError("the operator's identity was allowed this change")


def test_the_operators_identity_may_change_only_its_own_annotations(
    kube: Kube, as_operator: client.AppsV1Api, namespace: str, system_deployment: str
) -> None:
    # Not opted in: the operator itself leaves it alone while this test acts as it.
    kube.apps.create_namespaced_deployment(namespace, deployment("shop"))

    def patch(body: dict[str, Any], where: str = namespace, name: str = "shop") -> Any:
        return as_operator.patch_namespaced_deployment(name, where, body)

    def template(**more: Any) -> dict[str, Any]:
        return {"spec": {"template": more}}

    ours = template(metadata={"annotations": {"profilis.io/container-names": "app"}})
    patch(ours)  # what the operator does: allowed
    assert template_annotations(kube, namespace, "shop")["profilis.io/container-names"] == "app"
    image = template(spec={"containers": [{"name": "app", "image": "registry.example/evil:1"}]})
    message = denied(lambda: patch(image))
    assert "only the pod template's profilis.io/ annotations" in message, message
    denied(lambda: patch(template(metadata={"annotations": {"example.com/owner": "me"}})))
    denied(lambda: patch(template(metadata={"labels": {"tier": "evil"}})))
    denied(lambda: patch({"spec": {"replicas": 0}}))
    denied(lambda: patch({"metadata": {"annotations": {"example.com/owner": "me"}}}))
    message = denied(lambda: patch(ours, "kube-system", system_deployment))
    assert "may not change workloads in namespace kube-system" in message, message
    after = kube.apps.read_namespaced_deployment("shop", namespace)
    assert after.spec.replicas == 1
    assert after.spec.template.spec.containers[0].image != "registry.example/evil:1"


def test_a_pod_with_the_dashboard_token_secret_is_accepted(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "profilis-ui"}, "stringData": {"token": uuid.uuid4().hex}},
    )
    specs = {
        "guarded": {"dashboard": {"tokenSecretRef": {"name": "profilis-ui", "key": "token"}}},
        "quiet": {"dashboard": {"enabled": False}},
    }
    for name, spec in specs.items():
        kube.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            profilis_config(name, spec),
            field_validation="Strict",
        )
        wait_for(
            lambda name=name: kube.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            ).get("status", {}),
            lambda status: status.get("valid") is True,
            f"the operator's status of ProfilisConfig {name} (it has indexed it)",
        )
        annotations = {**INJECT, "profilis.io/config": name}
        kube.apps.create_namespaced_deployment(
            namespace, deployment(name, template_annotations=annotations)
        )
    env = {}
    for name in specs:
        (pod,) = kube.running_pods(namespace, f"app={name}", 1, injected=True)
        (sidecar,) = [c for c in pod.spec.init_containers if c.name == "profilis-sidecar"]
        env[name] = {e.name: e for e in sidecar.env}
    assert env["guarded"]["PROFILIS_SIDECAR_UI"].value == "token"
    reference = env["guarded"]["PROFILIS_SIDECAR_UI_TOKEN"].value_from.secret_key_ref
    assert (reference.name, reference.key, reference.optional) == ("profilis-ui", "token", True)
    assert env["quiet"]["PROFILIS_SIDECAR_UI"].value == "off"
    assert "PROFILIS_SIDECAR_UI_TOKEN" not in env["quiet"]
    assert not kube.events(namespace, "FailedCreate")


def test_the_network_policies_are_accepted_by_the_api_server(
    kube: Kube, helm: HelmCli, namespace: str, tmp_path: Path
) -> None:
    version = client.VersionApi(kube.api).get_code().git_version  # the plane's own
    rendered = helm.ok(
        "template", "np", CHART, "--namespace", namespace, "--kube-version", str(version),
        "--set", "networkPolicy.enabled=true",
        "--set", f"networkPolicy.sidecar.namespaces={{{namespace}}}",
        "--set", "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
    )  # fmt: skip
    policies = [
        doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "NetworkPolicy"
    ]
    assert len(policies) == 2
    networking = client.NetworkingV1Api(kube.api)
    for policy in policies:
        networking.create_namespaced_network_policy(namespace, policy, field_validation="Strict")
    stored = {
        p.metadata.name: p for p in networking.list_namespaced_network_policy(namespace).items
    }
    assert set(stored) == {"np-profilis-operator", "np-profilis-sidecar"}
    sidecar = stored["np-profilis-sidecar"].spec.ingress
    assert sidecar[0].ports[0].port == "profilis-http"
    assert [(p.port, p.end_port) for p in sidecar[1].ports[:2]] == [(1, 9463), (9465, 65535)]
    webhook = stored["np-profilis-operator"].spec.ingress[0]
    assert webhook.ports[0].port == "webhook"
    assert webhook._from[0].ip_block.cidr == "10.0.0.0/24"
