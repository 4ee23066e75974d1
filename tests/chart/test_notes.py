"""NOTES.txt tells how to annotate a Deployment and how to verify the install.

`helm template` never renders NOTES.txt and `helm install --dry-run` needs a cluster, so the
test renders it with helm's own `tpl` from a throw-away copy of the chart: the same template
engine, values and release object as an install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import CHART, NAMESPACE, RELEASE, Helm, scenarios
from tests.chart.manifests import one

SCENARIOS = scenarios()
_WRAPPER = """apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  notes: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}
"""


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("notes") / "profilis"
    shutil.copytree(CHART, copy, symlinks=False)
    shutil.copy(CHART / "templates" / "NOTES.txt", copy / "files" / "NOTES.txt")
    (copy / "templates" / "zz-rendered-notes.yaml").write_text(_WRAPPER)
    return copy


def render_notes(helm: Helm, chart: Path, values: Path | None) -> str:
    args: list[str | Path] = ["template", RELEASE, chart, "--namespace", NAMESPACE]
    args += ["--show-only", "templates/zz-rendered-notes.yaml"]
    if values:
        args += ["--values", values]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    notes: str = one(list(yaml.safe_load_all(result.stdout)), "ConfigMap")["data"]["notes"]
    return notes


def test_notes_tell_how_to_annotate_and_verify(helm: Helm, notes_chart: Path) -> None:
    notes = render_notes(helm, notes_chart, None)
    assert "kubectl annotate deployment/<name> -n <namespace> profilis.io/inject=true" in notes
    assert "kubectl rollout status deployment/<name>" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    assert "curl -s localhost:9464/metrics | grep profilis_http_requests_total" in notes
    assert "profilis.io/inject=disabled" in notes


def test_notes_name_the_labels_prometheus_must_select(helm: Helm, notes_chart: Path) -> None:
    notes = render_notes(helm, notes_chart, SCENARIOS["kube-prometheus-stack"])
    assert '{"release":"kube-prometheus-stack"}' in notes
    assert "grafana_dashboard=1 in namespace monitoring" in notes
    quiet = render_notes(helm, notes_chart, SCENARIOS["monitoring-off"])
    assert "Prometheus Operator objects" not in quiet and "Grafana" not in quiet


def test_notes_without_an_operator_pod_tell_where_to_run_it(helm: Helm, notes_chart: Path) -> None:
    notes = render_notes(helm, notes_chart, SCENARIOS["external-operator"])
    assert "helm test" not in notes, "there is no operator pod to test"
    assert "https://127.0.0.1:9443/mutate-pods" in notes
    assert f"Secret {RELEASE}-webhook-tls" in notes
    assert "Running the operator outside the cluster" in notes
