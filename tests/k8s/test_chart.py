"""The chart installed for real: `helm install --wait` of every scenario in charts/profilis/ci/
against the real API server (with the Prometheus Operator's and cert-manager's real CRDs),
`helm upgrade` keeping the webhook certificate (``lookup`` against a real server), and
`helm uninstall` leaving only what the chart's README says it keeps."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from tests.chart.helm import scenarios
from tests.k8s.kube import HelmCli, Kube
from tests.k8s.operator import Release

SCENARIOS = scenarios()


@pytest.fixture(scope="module")
def prerequisites(kube: Kube, third_party_crds: list[str]) -> Iterator[None]:
    """What the scenarios expect the cluster admin to have made: the namespaces they write
    into and the PriorityClass of high-availability-values.yaml."""
    made = [kube.namespace(n) for n in ("team-a", "monitoring")]
    scheduling = client.SchedulingV1Api(kube.api)
    scheduling.create_priority_class(
        {"metadata": {"name": "platform-critical"}, "value": 1_000_000, "globalDefault": False}
    )
    yield
    scheduling.delete_priority_class("platform-critical")
    for name in made:
        kube.delete_namespace(name)


def exists(kube: Kube, manifest: dict[str, Any]) -> bool:
    """Whether the object of ``manifest`` is stored (found through the API's discovery)."""
    resource = DynamicClient(kube.api).resources.get(
        api_version=manifest["apiVersion"], kind=manifest["kind"]
    )
    try:
        resource.get(
            name=manifest["metadata"]["name"], namespace=manifest["metadata"].get("namespace")
        )
    except NotFoundError:
        return False
    return True


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_installs_and_uninstalls_cleanly(
    kube: Kube, helm: HelmCli, prerequisites: None, scenario: str
) -> None:
    values_file: Path | None = SCENARIOS[scenario]
    release = Release(
        helm, f"sc-{scenario}", f"sc-{scenario}", [str(values_file)] if values_file else []
    )
    release.install()
    try:
        rendered = release.manifests()
        missing = [f"{m['kind']}/{m['metadata']['name']}" for m in rendered if not exists(kube, m)]
        assert not missing, f"rendered but not stored: {missing}"
        values = yaml.safe_load(values_file.read_text()) if values_file else {}
        replicas = values.get("operator", {}).get("replicas", 1)
        deployment = kube.apps.read_namespaced_deployment(
            f"{release.name}-profilis", release.namespace
        )
        assert (deployment.status.ready_replicas or 0) == replicas  # --wait waited (kwok)
        (webhooks,) = [m for m in rendered if m["kind"] == "MutatingWebhookConfiguration"]
        stored = kube.admission.read_mutating_webhook_configuration(webhooks["metadata"]["name"])
        (webhook,) = stored.webhooks
        assert webhook.failure_policy == "Ignore"
        assert webhook.side_effects == "NoneOnDryRun"
        mode = values.get("certificates", {}).get("mode", "helm")
        if mode == "helm":
            secret = kube.secret_data(release.namespace, f"{release.name}-profilis-webhook-tls")
            assert base64.b64decode(webhook.client_config.ca_bundle) == secret["ca.crt"]
    finally:
        release.uninstall()
    left = [f"{m['kind']}/{m['metadata']['name']}" for m in rendered if exists(kube, m)]
    assert not left, f"left behind by helm uninstall: {left}"
    # What the README says uninstall keeps: the CRD (helm never deletes crds/).
    kube.wait_established("profilisconfigs.profilis.io")
    kube.delete_namespace(release.namespace)


def test_an_upgrade_keeps_the_webhook_certificate(
    kube: Kube, helm: HelmCli, prerequisites: None
) -> None:
    release = Release(helm, "upgraded", "upgraded")
    release.install()
    try:
        secret_name = "upgraded-profilis-webhook-tls"
        before = kube.secret_data(release.namespace, secret_name)
        release.upgrade("--set", "operator.logLevel=DEBUG")
        after = kube.secret_data(release.namespace, secret_name)
        assert after == before, "helm upgrade generated a new certificate"
        name = release.manifest("MutatingWebhookConfiguration")["metadata"]["name"]
        (webhook,) = kube.admission.read_mutating_webhook_configuration(name).webhooks
        assert base64.b64decode(webhook.client_config.ca_bundle) == before["ca.crt"]
        deployment = kube.apps.read_namespaced_deployment("upgraded-profilis", "upgraded")
        args = deployment.spec.template.spec.containers[0].args
        assert "--log-level=DEBUG" in args  # the upgrade itself did happen
    finally:
        release.uninstall()
        kube.delete_namespace(release.namespace)
