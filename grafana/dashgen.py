"""Building blocks of the Profilis dashboards: panel specs, PromQL helpers, Grafana JSON.

build_dashboards.py holds the four dashboards written with these blocks and writes the JSON
files; this module knows how Grafana wants a panel, a variable and a dashboard laid out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

JSON = dict[str, object]

SCHEMA_VERSION = 39
DATASOURCE: JSON = {"type": "prometheus", "uid": "${datasource}"}
# Same numbers as the alert rules (the table in runbook.md), so colours match the pages.
QUEUE_WARNING_RATIO = 0.5
QUEUE_CRITICAL_RATIO = 0.9
ERROR_RATIO_WARNING = 0.05
LATENCY_P95_WARNING_S = 1.0

RATE = "$__rate_interval"
HTTP = 'namespace=~"$namespace", service=~"$service", route=~"$route"'
SVC = 'namespace=~"$namespace", service=~"$service"'
SIDECAR = 'job=~"$job", namespace=~"$namespace", pod=~"$pod"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"


@dataclass(frozen=True)
class Panel:
    """One panel: ``kind`` is a Grafana panel type; ``width`` is in 24ths of the row."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[float, ...] = ()
    max_value: float | None = None
    mappings: tuple[JSON, ...] = ()
    overrides: tuple[JSON, ...] = ()
    transformations: tuple[JSON, ...] = ()


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str
    description: str
    # ".*" lets a selector match series that lack the label (namespace without a PodMonitor).
    all_value: str | None = ".*"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]


def rate(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{RATE}]))"


def quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, {rate(metric + '_bucket', selector, labels)})"


def mean(metric: str, selector: str, by: str) -> str:
    return f"{rate(metric + '_sum', selector, by)} / {rate(metric + '_count', selector, by)}"


def error_ratio(selector: str, by: str = "") -> str:
    """5xx / all requests; 0 (not "no data") for groups that had no 5xx."""
    metric = "profilis_http_requests_total"
    errors = rate(metric, selector + ', status=~"5.."', by)
    total = rate(metric, selector, by)
    if not by:
        return f"({errors} or vector(0)) / {total}"
    return f"{errors} / {total} or 0 * {total}"


def stat(
    title: str, description: str, unit: str, expr: str, thresholds: tuple[float, ...] = ()
) -> Panel:
    """A single number, four to a row."""
    query = (Query(expr),)
    return Panel(title, description, unit, query, "stat", 6, 4, thresholds=thresholds)


def table(title: str, description: str, columns: dict[str, tuple[str, str]], sort: str) -> Panel:
    """``columns``: display name -> (unit, instant query); rows joined on their labels."""
    names = {f"Value #{chr(65 + i)}": name for i, name in enumerate(columns)}
    overrides: tuple[JSON, ...] = tuple(
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": u}]}
        for name, (u, _) in columns.items()
    )
    transformations: tuple[JSON, ...] = (
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names}},
        {"id": "sortBy", "options": {"sort": [{"field": sort, "desc": True}]}},
        {"id": "limit", "options": {"limitField": 10}},
    )
    queries = tuple(Query(expr, legend="") for _, expr in columns.values())
    return Panel(
        title,
        description,
        "short",
        queries,
        kind="table",
        width=24,
        height=9,
        overrides=overrides,
        transformations=transformations,
    )


# ---------------------------------------------------------------- JSON


# Panel options per panel type: only keys the Grafana schema knows (see test_dashboards.py).
OPTIONS: dict[str, JSON] = {
    "timeseries": {
        "legend": {
            "displayMode": "list",
            "placement": "bottom",
            "showLegend": True,
            "calcs": [],
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "stat": {
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    },
    "table": {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "countRows": False},
    },
}


def threshold_steps(values: tuple[float, ...]) -> JSON:
    colours = ("orange", "red")[-len(values) :] if values else ()
    steps: list[JSON] = [{"color": "green", "value": None}]
    steps += [{"color": c, "value": v} for c, v in zip(colours, values, strict=True)]
    return {"mode": "absolute", "steps": steps}


def panel_json(p: Panel, panel_id: int, x: int, y: int) -> JSON:
    defaults: JSON = {"unit": p.unit, "thresholds": threshold_steps(p.thresholds)}
    if p.kind == "timeseries":
        defaults["custom"] = {
            "fillOpacity": 10,
            "showPoints": "never",
            "thresholdsStyle": {"mode": "dashed" if p.thresholds else "off"},
        }
    if p.max_value is not None:
        defaults |= {"min": 0, "max": p.max_value}
    if p.mappings:
        defaults["mappings"] = list(p.mappings)
    instant = p.kind == "table"
    targets = [
        {
            "datasource": DATASOURCE,
            "refId": chr(65 + i),
            "expr": q.expr,
            "legendFormat": q.legend,
            "range": not instant,
            "instant": instant,
        }
        | ({"format": "table"} if instant else {})
        for i, q in enumerate(p.queries)
    ]
    out: JSON = {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "targets": targets,
        "options": OPTIONS[p.kind],
        "fieldConfig": {"defaults": defaults, "overrides": list(p.overrides)},
    }
    if p.transformations:
        out["transformations"] = list(p.transformations)
    return out


def variable_json(v: Variable) -> JSON:
    out: JSON = {
        "type": "query",
        "name": v.name,
        "label": v.label,
        "description": v.description,
        "datasource": DATASOURCE,
        "query": v.query,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "current": {"text": ["All"], "value": ["$__all"]},
    }
    if v.all_value is not None:
        out["allValue"] = v.all_value
    return out


def dashboard_json(d: Dashboard) -> JSON:
    panels: list[JSON] = []
    x = y = row_height = 0
    for panel_id, p in enumerate(d.panels, start=1):
        if x + p.width > 24:  # wrap to the next row
            x, y, row_height = 0, y + row_height, 0
        panels.append(panel_json(p, panel_id, x, y))
        x, row_height = x + p.width, max(row_height, p.height)
    datasource_var: JSON = {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "description": "Prometheus that scrapes the Profilis sidecars.",
        "refresh": 1,
        "current": {"text": "default", "value": "default"},
    }
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["profilis"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "links": [
            {
                "title": "Profilis dashboards",
                "type": "dashboards",
                "tags": ["profilis"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": [datasource_var, *map(variable_json, d.variables)]},
        "panels": panels,
    }


def render(d: Dashboard) -> str:
    return json.dumps(dashboard_json(d), indent=2) + "\n"
