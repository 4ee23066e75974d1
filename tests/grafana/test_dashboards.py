"""The dashboards, offline: the Grafana schema keeps every key (grafana-foundation-sdk
round-trip), every panel explains itself, uids are stable, queries follow the house rules,
and the provisioning files load them."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.grafana.artifacts import (
    DASHBOARDS_DIR,
    GRAFANA,
    Json,
    load_dashboards,
    panel_queries,
    panels,
)

DASHBOARDS = load_dashboards()
# uid per file: stable, because links, bookmarks and alert annotations point at them.
STABLE_UIDS = {
    "collector.json": "profilis-collector",
    "database.json": "profilis-database",
    "functions.json": "profilis-functions",
    "overview.json": "profilis-overview",
}
# DESIGN.md "Metrics": what the sidecar exposes (plus Prometheus' own `up`).
KNOWN_METRICS = {
    "up",
    "profilis_http_requests_total",
    "profilis_http_request_duration_seconds",
    "profilis_function_calls_total",
    "profilis_function_duration_seconds",
    "profilis_db_queries_total",
    "profilis_db_query_duration_seconds",
    "profilis_queue_depth",
    "profilis_queue_capacity",
    "profilis_events_dropped_total",
    "profilis_events_exported_total",
    "profilis_export_errors_total",
    "profilis_sidecar_events_received_total",
    "profilis_sidecar_batches_lost_total",
    "profilis_sidecar_workers",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PANEL_TYPES = {"timeseries", "stat", "table"}
EACH_DASHBOARD = pytest.mark.parametrize("name", sorted(DASHBOARDS))


def leaves(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """(path, value) for every scalar and every empty container in a JSON document."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}")
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def round_trip_losses(dashboard: Json) -> list[str]:
    """Keys the Grafana 11.6 dashboard model drops or changes when it reads ``dashboard``."""
    register_default_plugins()
    model = Dashboard.from_json(copy.deepcopy(dashboard))
    written = dict(leaves(json.loads(json.dumps(model, cls=JSONEncoder))))
    losses = []
    for path, value in leaves(dashboard):
        if path not in written:
            losses.append(f"dropped {path}")
        elif written[path] != value:
            losses.append(f"changed {path}: {value!r} -> {written[path]!r}")
    return losses


def test_the_sdk_is_the_pinned_grafana_11_6_model() -> None:
    from importlib.metadata import version

    assert version("grafana-foundation-sdk") == "1769699379!11.6.0"


@EACH_DASHBOARD
def test_schema_round_trip_keeps_every_key(name: str) -> None:
    assert round_trip_losses(DASHBOARDS[name]) == []


@EACH_DASHBOARD
def test_queries_and_options_decode_as_typed_models(name: str) -> None:
    """Typed models are what make the round trip a check: a raw dict would keep anything."""
    register_default_plugins()
    model = Dashboard.from_json(copy.deepcopy(DASHBOARDS[name]))
    for panel in model.panels or []:
        assert not isinstance(panel.options, dict), f"{panel.title}: options not decoded"
        for target in panel.targets or []:
            assert isinstance(target, prometheus.Dataquery), f"{panel.title}: {target!r}"


def test_the_round_trip_check_reports_unknown_keys() -> None:
    broken = copy.deepcopy(DASHBOARDS["overview.json"])
    broken["panels"][0]["fieldConfig"]["defaults"]["units"] = "s"
    broken["panels"][0]["targets"][0]["query"] = "up"
    broken["templating"]["list"][1]["definition"] = "label_values(up, job)"
    assert round_trip_losses(broken) == [
        "dropped .templating.list[1].definition",
        "dropped .panels[0].targets[0].query",
        "dropped .panels[0].fieldConfig.defaults.units",
    ]


def test_the_json_files_are_generated_from_build_dashboards() -> None:
    script = GRAFANA / "build_dashboards.py"
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_uids_are_stable_and_unique() -> None:
    assert {name: d["uid"] for name, d in DASHBOARDS.items()} == STABLE_UIDS


@EACH_DASHBOARD
def test_dashboard_metadata(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert 39 <= dashboard["schemaVersion"] <= Dashboard().schema_version
    assert dashboard["title"].startswith("Profilis / ")
    assert dashboard["description"]
    assert "profilis" in dashboard["tags"]
    assert re.fullmatch(r"[a-z0-9-]{8,40}", dashboard["uid"])


@EACH_DASHBOARD
def test_every_panel_has_a_title_description_and_unit(name: str) -> None:
    ids = []
    for panel in panels(DASHBOARDS[name]):
        ids.append(panel["id"])
        assert panel["type"] in PANEL_TYPES
        assert panel.get("title", "").strip(), panel
        assert panel.get("description", "").strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"], panel["title"]
    assert len(ids) == len(set(ids))


@EACH_DASHBOARD
def test_the_datasource_is_a_template_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = dashboard["templating"]["list"]
    first = variables[0]
    assert (first["type"], first["name"], first["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for variable in variables[1:]:
        assert variable["datasource"] == ref, variable["name"]
    for panel in panels(dashboard):
        assert panel["datasource"] == ref, panel["title"]
        assert all(t["datasource"] == ref for t in panel["targets"]), panel["title"]


@EACH_DASHBOARD
def test_variables_are_label_values_queries_and_all_are_defined(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= set(variables)
    if name != "collector.json":  # sidecar health carries no service label of its own
        assert "service" in variables
    if name == "overview.json":
        assert "route" in variables
    for v in list(variables.values())[1:]:
        assert re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]), v["query"]
        assert v["includeAll"] and v["multi"]
    texts = [e for _, e in panel_queries(dashboard)] + [
        v.get("query", "") for v in variables.values()
    ]
    used = {m for text in texts for m in re.findall(r"\$(\w+)", text)} - {"__rate_interval"}
    assert used <= set(variables)


@EACH_DASHBOARD
def test_rates_use_rate_interval_and_metrics_are_the_sidecars(name: str) -> None:
    for panel, expr in panel_queries(DASHBOARDS[name]):
        windows = re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", expr)
        assert set(windows) <= {"$__rate_interval"}, (panel["title"], expr)
        for metric in re.findall(r"\b(up|profilis_\w+)\b", expr):
            base = metric.removesuffix(
                next((s for s in HISTOGRAM_SUFFIXES if metric.endswith(s)), "")
            )
            assert base in KNOWN_METRICS, (panel["title"], metric)


def test_provisioning_loads_the_dashboards_folder() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasources["apiVersion"] == 1
    assert datasource["type"] == "prometheus" and datasource["isDefault"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/profilis.yaml").read_text())
    (provider,) = providers["providers"]
    assert providers["apiVersion"] == 1
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/dashboards/profilis")
    assert DASHBOARDS_DIR.name == "dashboards" and len(DASHBOARDS) == len(STABLE_UIDS)
