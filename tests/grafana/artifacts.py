"""The files in grafana/ read as data for the tests: alert rules, dashboards and the runbook.

test_rules.py and test_dashboards.py check them offline; test_live.py runs their queries and
alerts against real servers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
RULES_FILE = GRAFANA / "rules" / "profilis-alerts.yaml"
RULE_TESTS_FILE = GRAFANA / "rules" / "profilis-alerts.test.yaml"
RUNBOOK = GRAFANA / "runbook.md"
DASHBOARDS_DIR = GRAFANA / "dashboards"
RUNBOOK_BASE_URL = "https://github.com/profilis/profilis/blob/main/grafana/runbook.md#"

Json = dict[str, Any]

# A PromQL comparison with a number on its right: "> 0.5", "== 0".
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)")
DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AlertRule:
    name: str
    group: str
    expr: str
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def comparisons(self) -> list[str]:
        return [f"{op} {value}" for op, value in COMPARISON.findall(self.expr)]


def load_rules_document(path: Path = RULES_FILE) -> Json:
    document: Json = yaml.safe_load(path.read_text())
    return document


def load_alerts(path: Path = RULES_FILE) -> list[AlertRule]:
    return [
        AlertRule(
            name=rule["alert"],
            group=group["name"],
            expr=rule["expr"],
            for_=rule.get("for", "0s"),
            labels=rule.get("labels", {}),
            annotations=rule.get("annotations", {}),
        )
        for group in load_rules_document(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as "5m" or "1h30m"."""
    parts = DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * DURATION_S[u] for n, u in parts)


def load_dashboards() -> dict[str, Json]:
    """File name -> dashboard JSON, for every dashboard Grafana would provision."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: Json) -> Iterator[Json]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Json) -> Iterator[tuple[Json, str]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target["expr"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


@dataclass(frozen=True)
class ThresholdRow:
    alert: str
    severity: str
    comparisons: list[str]
    for_: str


def threshold_table() -> dict[str, ThresholdRow]:
    """The "Thresholds" table of the runbook, by alert name."""
    section = RUNBOOK.read_text().split("## Thresholds", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, ThresholdRow] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("Profilis"):
            continue
        alert, severity, _, threshold, for_ = cells
        comparisons = [" ".join(c.split()) for c in re.findall(r"`([^`]+)`", threshold)]
        rows[alert] = ThresholdRow(alert, severity, comparisons, for_)
    return rows
