"""Monitoring objects: the rules and dashboards are the grafana/ files, the PodMonitor gives
the job name the alerts select, labels and switches work, and one source feeds the chart."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest
import yaml

from profilis.k8s import METRICS_PORT_NAME
from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import CHART, NAMESPACE, REPO, Helm, Manifest, scenarios
from tests.chart.manifests import of_kind, one

SCENARIOS = scenarios()
GRAFANA = REPO / "grafana"
RULES_FILE = GRAFANA / "rules" / "profilis-alerts.yaml"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
MONITORING_KINDS = ("PodMonitor", "ServiceMonitor", "PrometheusRule")


def default_render(render: Render) -> list[Manifest]:
    return render(None, KUBE_VERSIONS[-1])


def dashboards(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Dashboard ConfigMaps by their data key."""
    found = {}
    for config_map in of_kind(manifests, "ConfigMap"):
        if "grafana_dashboard" in json.dumps(config_map["metadata"].get("labels", {})):
            (key,) = config_map["data"]
            found[key] = config_map
    return found


def test_the_prometheus_rule_is_the_rules_file(render: Render) -> None:
    rule = one(default_render(render), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())


def test_every_dashboard_is_rendered_unchanged(render: Render) -> None:
    assert DASHBOARD_FILES, "no dashboards in grafana/dashboards"
    rendered = dashboards(default_render(render))
    assert sorted(rendered) == [f"profilis-{path.name}" for path in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        config_map = rendered[f"profilis-{path.name}"]
        assert json.loads(config_map["data"][f"profilis-{path.name}"]) == json.loads(
            path.read_text()
        )
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_chart_reads_grafana_files_through_symlinks() -> None:
    # One source: the chart's files/ are links to grafana/, never copies that could drift.
    links = {
        CHART / "files" / "dashboards": GRAFANA / "dashboards",
        CHART / "files" / "profilis-alerts.yaml": RULES_FILE,
    }
    for link, target in links.items():
        assert link.is_symlink(), f"{link} must be a symlink to {target}"
        assert not Path(link.readlink()).is_absolute(), "absolute links break in other clones"
        assert link.resolve() == target.resolve()


def test_the_packaged_chart_carries_the_grafana_files(helm_package: Path) -> None:
    with tarfile.open(helm_package) as archive:
        members = {m.name: m for m in archive.getmembers()}
        rules = archive.extractfile("profilis/files/profilis-alerts.yaml")
        assert rules is not None and rules.read() == RULES_FILE.read_bytes()
        for path in DASHBOARD_FILES:
            member = f"profilis/files/dashboards/{path.name}"
            assert members[member].isfile(), "helm package must store the file, not a link"
            extracted = archive.extractfile(member)
            assert extracted is not None and extracted.read() == path.read_bytes()


@pytest.fixture(scope="module")
def helm_package(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    destination = tmp_path_factory.mktemp("package")
    result = helm.run("package", CHART, "--destination", destination)
    assert result.returncode == 0, result.stderr
    (archive,) = destination.glob("profilis-*.tgz")
    return archive


def test_the_pod_monitor_gives_the_job_name_the_sidecar_alert_selects(render: Render) -> None:
    pod_monitor = one(default_render(render), "PodMonitor")
    # Prometheus Operator names the job <namespace>/<PodMonitor name>.
    job = f"{pod_monitor['metadata']['namespace']}/{pod_monitor['metadata']['name']}"
    rules = yaml.safe_load(RULES_FILE.read_text())
    (sidecar_down,) = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "ProfilisSidecarDown"
    ]
    selector = re.search(r'job=~"([^"]+)"', sidecar_down["expr"])
    assert selector is not None, sidecar_down["expr"]
    assert re.fullmatch(selector.group(1), job)


def test_the_pod_monitor_scrapes_the_sidecar_port_in_every_namespace(render: Render) -> None:
    spec = one(default_render(render), "PodMonitor")["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == METRICS_PORT_NAME
    assert endpoint["path"] == "/metrics"


def test_the_service_monitor_scrapes_the_operator_service(render: Render) -> None:
    manifests = default_render(render)
    monitor = one(manifests, "ServiceMonitor")["spec"]
    service = one(manifests, "Service")
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["selector"]["matchLabels"].items())
    (endpoint,) = monitor["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["port"] == 8080 and endpoint["path"] == "/metrics"


def test_kube_prometheus_stack_labels_and_dashboard_placement(render: Render) -> None:
    manifests = render(SCENARIOS["kube-prometheus-stack"], KUBE_VERSIONS[-1])
    for kind in MONITORING_KINDS:
        assert one(manifests, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for config_map in dashboards(manifests).values():
        assert config_map["metadata"]["namespace"] == "monitoring"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "Profilis"}
    assert one(manifests, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["interval"] == "15s"


def test_the_dashboard_label_is_configurable(helm: Helm) -> None:
    manifests = helm.template(
        set_values=[
            "monitoring.dashboards.label=dashboards",
            "monitoring.dashboards.labelValue=profilis",
        ]
    )
    config_maps = [
        m for m in of_kind(manifests, "ConfigMap") if "-dashboard-" in m["metadata"]["name"]
    ]
    assert len(config_maps) == len(DASHBOARD_FILES)
    for config_map in config_maps:
        assert config_map["metadata"]["labels"]["dashboards"] == "profilis"
        assert "grafana_dashboard" not in config_map["metadata"]["labels"]


def test_monitoring_off_renders_no_monitoring_object(render: Render) -> None:
    manifests = render(SCENARIOS["monitoring-off"], KUBE_VERSIONS[-1])
    for kind in MONITORING_KINDS:
        assert not of_kind(manifests, kind)
    assert not dashboards(manifests)
