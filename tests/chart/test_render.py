"""helm lint --strict and kubernetes-validate --strict over every scenario of the chart.

Built-in kinds are validated against Kubernetes' own schemas (1.28 and 1.31, strict: unknown
fields fail); custom resources, which kubernetes-validate only warns about, are checked in
test_custom_resources.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import CHART, Helm, Manifest, scenarios

SCENARIOS = scenarios()
#: Kinds the chart renders whose schemas ship with Kubernetes; anything else is a custom
#: resource. A kind missing here fails test_every_kind_is_accounted_for, not silently.
BUILT_IN_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "MutatingWebhookConfiguration",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
CUSTOM_KINDS = frozenset(
    {"ProfilisConfig", "PodMonitor", "ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"}
)


def name_of(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def test_the_scenarios_of_the_issue_exist() -> None:
    assert {"cert-manager", "self-signed", "monitoring-off", "kube-prometheus-stack"} <= set(
        SCENARIOS
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: Helm, scenario: str) -> None:
    values = SCENARIOS[scenario]
    args: list[str | Path] = ["lint", "--strict", CHART, "--namespace", "profilis-system"]
    if values:
        args += ["--values", values]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_built_in_object_validates_strictly(
    render: Render, scenario: str, kube_version: str
) -> None:
    manifests = render(SCENARIOS[scenario], kube_version)
    failures = []
    for manifest in manifests:
        if manifest["kind"] not in BUILT_IN_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            failures.append(f"{name_of(manifest)}: {path}: {exc.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_kind_is_accounted_for(render: Render, scenario: str) -> None:
    kinds = {m["kind"] for m in render(SCENARIOS[scenario], KUBE_VERSIONS[-1])}
    assert kinds <= BUILT_IN_KINDS | CUSTOM_KINDS, kinds - BUILT_IN_KINDS - CUSTOM_KINDS


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_the_kubernetes_validate_command_accepts_the_default_render(
    helm: Helm, kube_version: str, tmp_path: Path
) -> None:
    # The same check through the command users run (`helm template ... | kubernetes-validate`),
    # so its exit status and warnings are covered too, not only the library call.
    rendered = helm.run(*helm.template_args(kube_version=kube_version))
    assert rendered.returncode == 0, rendered.stderr
    manifest_file = tmp_path / "rendered.yaml"
    manifest_file.write_text(rendered.stdout)
    command = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run(
        [str(command), "--strict", "--quiet", "-k", kube_version, str(manifest_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout
    # Only custom resources may be skipped with a warning, never a built-in kind.
    warned = [line for line in result.stdout.splitlines() if line.startswith("WARN")]
    assert all(any(f"kind {k} " in line for k in CUSTOM_KINDS) for line in warned), warned


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_uninstall_deletes_every_object_but_the_test_hook(
    render: Render, scenario: str
) -> None:
    # What README.md's "Uninstall" says Helm leaves behind rests on this: no object asks to be
    # kept, and the only hook (not a release object, so never deleted by uninstall) is the
    # helm test pod, which deletes itself when it passes.
    for manifest in render(SCENARIOS[scenario], KUBE_VERSIONS[-1]):
        annotations = manifest["metadata"].get("annotations") or {}
        assert "helm.sh/resource-policy" not in annotations, name_of(manifest)
        if "helm.sh/hook" in annotations:
            assert manifest["kind"] == "Pod" and annotations["helm.sh/hook"] == "test"
            assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
