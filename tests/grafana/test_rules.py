"""The alert rules: promtool accepts and unit-tests them, every `for` boundary is pinned, and
the runbook documents each alert and the same thresholds as the rules file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.grafana.artifacts import (
    RULE_TESTS_FILE,
    RULES_FILE,
    RUNBOOK_BASE_URL,
    AlertRule,
    Json,
    load_alerts,
    load_dashboards,
    panels,
    parse_duration,
    runbook_anchors,
    threshold_table,
)

ALERTS = load_alerts()
ALERT_NAMES = [a.name for a in ALERTS]
# The issue's list of alerts; a rename or removal must be deliberate.
EXPECTED_ALERTS = {
    "ProfilisQueueFilling",
    "ProfilisQueueSaturated",
    "ProfilisEventsDropped",
    "ProfilisSidecarDown",
    "ProfilisNoWorkersReporting",
    "ProfilisExportErrors",
    "ProfilisHighErrorRatio",
    "ProfilisHighLatencyP95",
}


def promtool(tools: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [tools["promtool"], *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_the_rules_file_has_every_alert_of_the_issue() -> None:
    assert set(ALERT_NAMES) == EXPECTED_ALERTS
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES)), "duplicate alert names"


def test_promtool_check_rules(prometheus_tools: dict[str, str]) -> None:
    result = promtool(prometheus_tools, "check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_test_rules(prometheus_tools: dict[str, str]) -> None:
    result = promtool(prometheus_tools, "test", "rules", RULE_TESTS_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def boundary_checks(alert: str) -> list[tuple[float, bool]]:
    """(eval time in seconds, alert expected?) for every check of ``alert`` in the test file."""
    document = yaml.safe_load(RULE_TESTS_FILE.read_text())
    return [
        (parse_duration(check["eval_time"]), bool(check["exp_alerts"]))
        for test in document["tests"]
        for check in test.get("alert_rule_test", [])
        if check["alertname"] == alert
    ]


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_every_alert_is_tested_one_interval_before_and_at_its_for(alert: AlertRule) -> None:
    interval = parse_duration(yaml.safe_load(RULE_TESTS_FILE.read_text())["evaluation_interval"])
    checks = boundary_checks(alert.name)
    firing = {t for t, expected in checks if expected}
    silent = {t for t, expected in checks if not expected}
    pinned = [t for t in firing if t >= parse_duration(alert.for_) and t - interval in silent]
    assert pinned, f"{alert.name}: no check of silence at t-{interval}s and an alert at t >= for"


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_rule_tests_expect_the_rules_labels_and_annotations(alert: AlertRule) -> None:
    document = yaml.safe_load(RULE_TESTS_FILE.read_text())
    expected = [
        exp
        for test in document["tests"]
        for check in test.get("alert_rule_test", [])
        if check["alertname"] == alert.name
        for exp in check["exp_alerts"]
    ]
    assert expected
    for exp in expected:
        assert exp["exp_labels"]["severity"] == alert.labels["severity"]
        assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}
        assert exp["exp_annotations"]["runbook_url"] == alert.annotations["runbook_url"]


@pytest.mark.parametrize("change", ["shorter", "longer"])
@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_changing_a_for_breaks_the_rule_tests(
    alert: AlertRule, change: str, tmp_path: Path, prometheus_tools: dict[str, str]
) -> None:
    """The boundary tests can fail: one minute more or less of `for` is caught."""
    document = yaml.safe_load(RULES_FILE.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert.name:
                minutes = parse_duration(rule["for"]) / 60 + (-1 if change == "shorter" else 1)
                rule["for"] = f"{int(minutes)}m"
    (tmp_path / RULES_FILE.name).write_text(yaml.safe_dump(document))
    shutil.copy(RULE_TESTS_FILE, tmp_path)
    result = promtool(prometheus_tools, "test", "rules", tmp_path / RULE_TESTS_FILE.name)
    assert result.returncode != 0
    assert f"alertname: {alert.name}" in result.stdout + result.stderr


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_every_alert_has_for_severity_summary_description_and_runbook(alert: AlertRule) -> None:
    assert parse_duration(alert.for_) > 0
    assert alert.labels.get("severity") in {"warning", "critical"}
    for key in ("summary", "description", "runbook_url"):
        assert alert.annotations.get(key, "").strip(), f"{alert.name} lacks {key}"
    url = alert.annotations["runbook_url"]
    assert url == RUNBOOK_BASE_URL + alert.name.lower()
    assert url.removeprefix(RUNBOOK_BASE_URL) in runbook_anchors(), f"no runbook section: {url}"


def test_the_runbook_thresholds_table_matches_the_rules() -> None:
    table = threshold_table()
    assert set(table) == set(ALERT_NAMES)
    for alert in ALERTS:
        row = table[alert.name]
        documented = (row.severity, row.for_, row.comparisons)
        assert documented == (alert.labels["severity"], alert.for_, alert.comparisons), alert.name


def threshold_values(dashboard: Json, title: str) -> list[float]:
    (panel,) = [p for p in panels(dashboard) if p["title"] == title]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [step["value"] for step in steps if step["value"] is not None]


def rule_threshold(name: str, index: int = 0) -> float:
    (alert,) = [a for a in ALERTS if a.name == name]
    return float(alert.comparisons[index].split()[1])


def test_dashboard_threshold_lines_are_the_alert_thresholds() -> None:
    dashboards = load_dashboards()
    collector, overview = dashboards["collector.json"], dashboards["overview.json"]
    assert threshold_values(collector, "Queue fill ratio") == [
        rule_threshold("ProfilisQueueFilling"),
        rule_threshold("ProfilisQueueSaturated"),
    ]
    assert threshold_values(overview, "Error ratio (5xx)") == [
        rule_threshold("ProfilisHighErrorRatio")
    ]
    assert threshold_values(overview, "p95 latency") == [rule_threshold("ProfilisHighLatencyP95")]
