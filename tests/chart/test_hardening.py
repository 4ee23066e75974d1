"""Issue 16, the chart's part, rendered with the real helm: scrape limits on the PodMonitor
and ServiceMonitor, NetworkPolicies for 9443, 8080 and the sidecars' port, the policy that
keeps the operator's workload patches out of kube-system, and the dashboard switch and token
reaching the operator's defaults. (tests/k8s/test_hardening.py has the API server's side.)"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from profilis_operator.additions import sidecar
from profilis_operator.effective_config import SecretKeyRef, resolve
from profilis_sidecar.settings import SidecarSettings
from tests.chart.helm import CHART, NAMESPACE, Helm
from tests.chart.manifests import of_kind, one

HARDENED = CHART / "ci" / "hardened-values.yaml"


def defaults_of(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [
        m for m in of_kind(manifests, "ConfigMap") if "defaults.yaml" in m.get("data", {})
    ]
    return dict(yaml.safe_load(config_map["data"]["defaults.yaml"]))


def test_the_monitors_set_scrape_limits_above_the_sidecars_own_caps(helm: Helm) -> None:
    manifests = helm.template()
    pod_monitor = one(manifests, "PodMonitor")["spec"]
    service_monitor = one(manifests, "ServiceMonitor")["spec"]
    for spec in (pod_monitor, service_monitor):
        assert spec["sampleLimit"] > 0 and spec["labelLimit"] > 0
        assert spec["labelValueLengthLimit"] > 0
    # The sidecar collapses what is past its cap into an overflow series: the scrape limit
    # is only the backstop, so a capped sidecar must never hit it.
    settings = SidecarSettings()
    budget = getattr(settings, "series_budget", settings.max_series)
    assert pod_monitor["sampleLimit"] >= 2 * budget
    # Above the most the sidecar's own label-length cap can be set to.
    assert pod_monitor["labelValueLengthLimit"] > 1024 >= getattr(settings, "max_label_length", 0)
    tightened = helm.template([HARDENED])
    assert one(tightened, "PodMonitor")["spec"]["sampleLimit"] == 30000


def test_network_policies_are_off_by_default_and_cover_the_three_ports(helm: Helm) -> None:
    assert not of_kind(helm.template(), "NetworkPolicy")
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in of_kind(helm.template([HARDENED]), "NetworkPolicy")
    }
    assert set(policies) == {
        (NAMESPACE, "profilis-operator"),
        ("default", "profilis-sidecar"),
    }
    operator = policies[NAMESPACE, "profilis-operator"]
    assert operator["policyTypes"] == ["Ingress"]
    assert operator["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    webhook, metrics = operator["ingress"]
    assert webhook == {
        "ports": [{"port": "webhook", "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
    }
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    # The helm test pod (the chart's own) keeps its /healthz check; Prometheus scrapes.
    own, prometheus = metrics["from"]
    assert own["podSelector"]["matchLabels"] == {"profilis.io/control-plane": "profilis"}
    assert prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    shop = policies["default", "profilis-sidecar"]
    assert shop["podSelector"] == {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
    scrape, others = shop["ingress"]
    assert scrape["ports"] == [{"port": "profilis-http", "protocol": "TCP"}]
    assert scrape["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus"
    }
    # Every other port stays open, the sidecar's own excepted.
    assert others == {
        "ports": [
            {"port": 1, "endPort": 9463, "protocol": "TCP"},
            {"port": 9465, "endPort": 65535, "protocol": "TCP"},
            {"protocol": "UDP"},
            {"protocol": "SCTP"},
        ]
    }
    only_scrape = helm.template([HARDENED], ["networkPolicy.sidecar.allowOtherPorts=false"])
    (shop_only,) = [
        p for p in of_kind(only_scrape, "NetworkPolicy") if p["metadata"]["namespace"] == "default"
    ]
    assert len(shop_only["spec"]["ingress"]) == 1


def test_the_workload_guard_binds_the_operators_identity_on_1_30_and_later(helm: Helm) -> None:
    assert not of_kind(helm.template(kube_version="1.28"), "ValidatingAdmissionPolicy")
    manifests = helm.template(kube_version="1.31")
    policy = one(manifests, "ValidatingAdmissionPolicy")
    binding = one(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    service_account = one(manifests, "ServiceAccount")["metadata"]["name"]
    (condition,) = policy["spec"]["matchConditions"]
    assert f'"system:serviceaccount:{NAMESPACE}:{service_account}"' in condition["expression"]
    namespaces = policy["spec"]["validations"][0]["expression"]
    for protected in ("kube-system", NAMESPACE, "kube-node-lease", "kube-public"):
        assert f"'{protected}'" in namespaces
    assert policy["spec"]["failurePolicy"] == "Fail"
    off = helm.template(set_values=["rbac.workloadGuard.enabled=false"])
    assert not of_kind(off, "ValidatingAdmissionPolicy")


@pytest.mark.parametrize("enabled", [True, False])
def test_the_dashboard_values_reach_the_sidecar_through_the_operators_defaults(
    helm: Helm, enabled: bool
) -> None:
    assert "tokenSecretRef" not in defaults_of(helm.template())["dashboard"]
    manifests = helm.template([HARDENED], [f"injection.dashboard.enabled={str(enabled).lower()}"])
    config = resolve({}, defaults_of(manifests))
    assert config.dashboard_enabled is enabled
    assert config.dashboard_token == SecretKeyRef("profilis-dashboard", "token")
    env = {item["name"]: item for item in sidecar(config, "shop", 9464)["env"]}
    assert env["PROFILIS_SIDECAR_UI"]["value"] == ("token" if enabled else "off")
    if enabled:
        reference = env["PROFILIS_SIDECAR_UI_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": "profilis-dashboard", "key": "token", "optional": True}
    else:
        assert "PROFILIS_SIDECAR_UI_TOKEN" not in env


def test_a_bad_dashboard_secret_name_is_refused_by_the_schema(helm: Helm) -> None:
    result = helm.run(
        *helm.template_args(set_values=["injection.dashboard.tokenSecretRef.name=Not_A_Name"])
    )
    assert result.returncode != 0
    assert "name" in result.stderr and "schema" in result.stderr, result.stderr
