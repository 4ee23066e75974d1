"""The ProfilisConfig CRD is one the API server accepts: a structural schema, CEL rules whose
inputs are bounded, defaults that validate, and pruning of what it does not declare.

helm installs crds/ verbatim and kubernetes-validate only checks the CRD object's own fields,
so the API server's rules for the schema inside it are checked here (tests.chart.structural).
Each check is first shown to catch the mistake it is about, on a broken copy of the schema.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART
from tests.chart.structural import (
    Schema,
    cel_cost_errors,
    nodes,
    structural_errors,
    unbounded,
    unknown_fields,
)

CRD_FILE = CHART / "crds" / "profilisconfig.yaml"


def crd() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return result


def schema() -> Schema:
    (version,) = crd()["spec"]["versions"]
    result: Schema = version["schema"]["openAPIV3Schema"]
    return result


def spec_field(root: Schema, *names: str) -> Schema:
    node: Schema = root["properties"]["spec"]
    for name in names:
        node = node["items"] if name == "[]" else node["properties"][name]
    return node


def test_the_schema_is_structural() -> None:
    (version,) = crd()["spec"]["versions"]
    has_status = "status" in version.get("subresources", {})
    assert structural_errors(schema(), status_subresource=has_status) == []


def test_every_cel_rule_reads_bounded_values() -> None:
    assert cel_cost_errors(schema()) == []


def test_the_cel_rules_are_checked_here() -> None:
    # Otherwise the check above would pass without looking at anything.
    rules = [
        (path, rule["rule"])
        for path, node in nodes(schema())
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 2, rules
    assert any("'otlp' in self.enabled" in rule for _, rule in rules)


def test_every_spec_array_is_bounded() -> None:
    # Not only those a rule reads today: a rule added later must not need a schema change
    # that refuses configs already stored.
    spec = schema()["properties"]["spec"]
    arrays = [(path, node) for path, node in nodes(spec, "spec") if node.get("type") == "array"]
    assert len(arrays) >= 3
    for path, node in arrays:
        assert unbounded(node) == [], path


def test_unknown_fields_are_what_pruning_drops() -> None:
    config = {
        "apiVersion": "profilis.io/v1alpha1",
        "kind": "ProfilisConfig",
        "metadata": {"name": "x", "namespace": "shop", "labels": {"team": "a"}},
        "spec": {
            "sampling": {"rate": 0.5, "ratio": 0.5},
            "tracing": {},
            "sidecar": {"resources": {"limits": {"memory": "1Gi", "gpu": 1}}},
        },
        "status": {"valid": True, "phase": "Ready"},
    }
    assert list(unknown_fields(config, schema())) == [
        ".spec.sampling.ratio",
        ".spec.tracing",
        ".spec.sidecar.resources.limits.gpu",
        ".status.phase",
    ]


Mutation = Callable[[Schema], None]


def _set(*names: str, key: str, value: Any) -> Mutation:
    def mutate(root: Schema) -> None:
        spec_field(root, *names)[key] = value

    return mutate


def _delete(*names: str, key: str) -> Mutation:
    def mutate(root: Schema) -> None:
        del spec_field(root, *names)[key]

    return mutate


def _restrict_metadata(root: Schema) -> None:
    root["properties"]["metadata"]["properties"] = {"labels": {"type": "object"}}


#: A broken copy of the CRD's schema -> a phrase of the error it must produce.
BROKEN: dict[str, tuple[Callable[[Schema], list[str]], Mutation, str]] = {
    # What a real API server answered for the chart's CRD (14 times, once per object node).
    "additionalProperties beside properties": (
        structural_errors,
        _set("sampling", key="additionalProperties", value=False),
        "properties[sampling]: additionalProperties and properties are mutual exclusive",
    ),
    "a field without a type": (
        structural_errors,
        _delete("sampling", "rate", key="type"),
        "properties[rate]: type must not be empty",
    ),
    "a type under anyOf": (
        structural_errors,
        _set("serviceName", key="anyOf", value=[{"type": "string", "minLength": 2}]),
        "anyOf[0].type must not be set under a junctor",
    ),
    "a field specified only under a junctor": (
        structural_errors,
        _set("sampling", key="oneOf", value=[{"properties": {"ratio": {"minimum": 0}}}]),
        "oneOf[0].properties[ratio] is not specified outside the junctor",
    ),
    "uniqueItems": (
        structural_errors,
        _set("exporters", "enabled", key="uniqueItems", value=True),
        "uniqueItems cannot be set to true",
    ),
    "a misspelt keyword": (
        structural_errors,
        _set("serviceName", key="maxLenght", value=10),
        "unknown schema fields ['maxLenght']",
    ),
    "metadata restricted beyond its name": (
        structural_errors,
        _restrict_metadata,
        "must not specify anything other than name and generateName",
    ),
    "a default the schema refuses": (
        structural_errors,
        _set("sampling", "rate", key="default", value=2),
        "properties[rate].default: 2 is greater than the maximum of 1",
    ),
    "a searched array without maxItems": (
        cel_cost_errors,
        _delete("exporters", "enabled", key="maxItems"),
        "self.enabled is an array without maxItems",
    ),
    "a searched array of unbounded strings": (
        cel_cost_errors,
        _delete("exporters", "enabled", "[]", key="maxLength"),
        "self.enabled has string items without maxLength",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_checks_catch_what_the_api_server_refuses(case: str) -> None:
    check, mutate, expected = BROKEN[case]
    broken = copy.deepcopy(schema())
    mutate(broken)
    errors = check(broken)
    assert any(expected in error for error in errors), errors
