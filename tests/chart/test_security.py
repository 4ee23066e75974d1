"""Least privilege in every scenario: RBAC without wildcards or Secrets, and containers that
run as non-root on a read-only root filesystem with no capabilities."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import NAMESPACE, Manifest, scenarios
from tests.chart.manifests import containers, of_kind, one, pod_specs

SCENARIOS = scenarios()


def rules_of(manifests: list[Manifest], kind: str) -> list[dict[str, Any]]:
    return [rule for role in of_kind(manifests, kind) for rule in role.get("rules", [])]


@pytest.fixture(params=list(SCENARIOS))
def manifests(request: pytest.FixtureRequest, render: Render) -> list[Manifest]:
    return render(SCENARIOS[request.param], KUBE_VERSIONS[-1])


def test_no_rbac_rule_uses_a_wildcard(manifests: list[Manifest]) -> None:
    for rule in rules_of(manifests, "ClusterRole") + rules_of(manifests, "Role"):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert "*" not in rule.get(field, []), rule
            assert not any("*" in item for item in rule.get(field, [])), rule


def test_no_cluster_wide_access_to_secrets(manifests: list[Manifest]) -> None:
    for rule in rules_of(manifests, "ClusterRole"):
        if "" in rule["apiGroups"]:
            assert "secrets" not in rule["resources"], rule


def test_namespaced_roles_stay_in_the_release_namespace(manifests: list[Manifest]) -> None:
    for kind in ("Role", "RoleBinding"):
        for manifest in of_kind(manifests, kind):
            assert manifest["metadata"]["namespace"] == NAMESPACE


def test_the_cluster_role_is_bound_to_the_operator_only(manifests: list[Manifest]) -> None:
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(manifests, "ClusterRole")["metadata"]["name"]
    service_account = one(manifests, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
    ]


def test_only_read_and_patch_verbs_apart_from_events(manifests: list[Manifest]) -> None:
    # The operator never creates, updates or deletes anything but Events: a patch suffices.
    allowed = {"get", "list", "watch", "patch"}
    for rule in rules_of(manifests, "ClusterRole"):
        extra = set(rule["verbs"]) - allowed
        if extra:
            assert rule["resources"] == ["events"] and extra == {"create"}, rule


def test_webhook_configurations_are_writable_only_with_self_signed_certificates(
    render: Render,
) -> None:
    for scenario, values in SCENARIOS.items():
        rules = rules_of(render(values, KUBE_VERSIONS[-1]), "ClusterRole")
        writes = [r for r in rules if "mutatingwebhookconfigurations" in r["resources"]]
        if scenario != "self-signed":
            assert not writes, scenario
            continue
        (rule,) = writes
        webhook = one(render(values, KUBE_VERSIONS[-1]), "MutatingWebhookConfiguration")
        # Only its own configuration: patching another would hijack someone else's webhook.
        assert rule["resourceNames"] == [webhook["metadata"]["name"]]
        assert set(rule["verbs"]) == {"get", "patch"}


def test_every_container_runs_as_non_root_on_a_read_only_root(manifests: list[Manifest]) -> None:
    specs = list(pod_specs(manifests))
    assert specs, "no pods rendered"
    for where, pod in specs:
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("runAsNonRoot") is True, where
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in containers(pod):
            context = container["securityContext"]
            label = f"{where} container {container['name']}"
            assert context["runAsNonRoot"] is True, label
            assert context["runAsUser"] > 0, label
            assert context["readOnlyRootFilesystem"] is True, label
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["capabilities"] == {"drop": ["ALL"]}, label
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, label
            assert "privileged" not in context, label


def test_every_container_has_resources_and_a_pinned_image(manifests: list[Manifest]) -> None:
    for where, pod in pod_specs(manifests):
        for container in containers(pod):
            assert container["resources"]["requests"]["memory"], where
            assert container["resources"]["limits"]["memory"], where
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_the_helm_test_pod_mounts_no_private_key(render: Render) -> None:
    for values in SCENARIOS.values():
        for where, pod in pod_specs(render(values, KUBE_VERSIONS[-1])):
            if not where.startswith("Pod/"):
                continue
            assert pod["automountServiceAccountToken"] is False
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
