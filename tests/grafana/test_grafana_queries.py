"""The Grafana interpolation the live test relies on, checked offline on the real dashboards."""

from __future__ import annotations

from tests.grafana.artifacts import load_dashboards
from tests.grafana.grafana_queries import dashboard_queries, escape, resolve_variables

KNOWN = {
    "namespace": ["shop", "web"],
    "service": ["checkout"],
    "route": ["/orders/{id}", "/health"],
    "job": ["profilis-sidecar"],
    "pod": ["shop-0"],
}


def fake_label_values(label: str, selector: str) -> list[str]:
    assert "$" not in selector, f"unresolved variable in {selector}"
    return KNOWN[label]


def test_escape_makes_route_templates_literal_regexes() -> None:
    assert escape("/orders/{id}") == r"/orders/\\{id\\}"
    assert escape("a.b|c") == r"a\\.b\\|c"


def test_all_and_first_value_substitution_leave_no_variables() -> None:
    for name, dashboard in load_dashboards().items():
        for pick_all in (True, False):
            values = resolve_variables(dashboard, fake_label_values, pick_all=pick_all)
            queries = list(dashboard_queries(name, dashboard, values, rate_interval="5s"))
            assert queries
            for query in queries:
                assert "$" not in query.expr, query
                assert "[5s]" in query.expr or "rate(" not in query.expr


def test_all_uses_all_value_or_the_alternation_of_values() -> None:
    collector = load_dashboards()["collector.json"]
    values = resolve_variables(collector, fake_label_values, pick_all=True)
    assert values == {"job": "(profilis-sidecar)", "namespace": ".*", "pod": ".*"}
    overview = load_dashboards()["overview.json"]
    first = resolve_variables(overview, fake_label_values, pick_all=False)
    assert first == {"namespace": "shop", "service": "checkout", "route": r"/orders/\\{id\\}"}
