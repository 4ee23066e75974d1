"""What Grafana would send to Prometheus for a dashboard: variables resolved, then substituted.

Grafana resolves each `label_values(<selector>, <label>)` variable in order (later ones may use
earlier ones), then interpolates the panel queries: `$__rate_interval` becomes a range of at
least four scrape intervals, a multi-value variable becomes a regex (`.*` for "All" when the
variable has an allValue, else the alternation of every value), regex characters escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.grafana.artifacts import Json, panel_queries

LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+), (?P<label>\w+)\)")
REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")

# label -> selector -> values (the Prometheus label-values API)
LabelValues = Callable[[str, str], list[str]]


def escape(value: str) -> str:
    """A label value as a regex inside a PromQL string (Grafana's Prometheus escaping)."""
    return REGEX_SPECIAL.sub(r"\\\\\1", value)


def substitute(text: str, values: dict[str, str], rate_interval: str) -> str:
    text = text.replace("$__rate_interval", rate_interval)
    # Longest names first so "$pod" never eats the start of a longer name.
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(f"${name}", values[name])
    return text


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def resolve_variables(
    dashboard: Json, label_values: LabelValues, *, pick_all: bool
) -> dict[str, str]:
    """Variable name -> interpolated value: "All", or the first value Prometheus knows."""
    resolved: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"])
        assert match, variable["query"]
        selector = substitute(match["selector"], resolved, rate_interval="")
        values = label_values(match["label"], selector)
        assert values, f"variable {variable['name']}: no values for {selector}"
        if pick_all and "allValue" in variable:
            resolved[variable["name"]] = variable["allValue"]
        elif pick_all:
            resolved[variable["name"]] = "(" + "|".join(map(escape, values)) + ")"
        else:
            resolved[variable["name"]] = escape(values[0])
    return resolved


def dashboard_queries(
    name: str, dashboard: Json, values: dict[str, str], rate_interval: str
) -> Iterator[PanelQuery]:
    for panel, expr in panel_queries(dashboard):
        yield PanelQuery(name, panel["title"], substitute(expr, values, rate_interval))
