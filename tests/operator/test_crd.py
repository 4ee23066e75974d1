"""The ProfilisConfig CRD: examples accepted, bad values refused, defaults and enums equal to
what the operator and ``profilis.config`` use.

Fields the schema does not declare are not schema errors (a structural schema cannot say
additionalProperties: false beside properties): the API server prunes them, or refuses them
under fieldValidation=Strict, which ``unknown_fields`` models. tests/chart/test_crd_schema.py
checks that the schema is structural.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from profilis.config import EXPORTERS, INSTRUMENTATIONS
from profilis_operator.effective_config import BUILTIN_SPEC, PULL_POLICIES, resolve
from profilis_operator.errors import InvalidConfigError
from tests.chart.structural import unknown_fields
from tests.operator.conftest import CRD_PATH, crd

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "profilisconfig.yaml"


def schema() -> dict[str, Any]:
    result: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def validator() -> jsonschema.Draft4Validator:
    # OpenAPI 3.0 schemas are draft 4 with extensions (boolean exclusiveMinimum included).
    return jsonschema.Draft4Validator(schema())


def spec_schema(section: str) -> dict[str, Any]:
    result: dict[str, Any] = schema()["properties"]["spec"]["properties"][section]
    return result


def test_the_crd_itself_is_valid_for_both_versions() -> None:
    for version in ("1.28.0", "1.31.0"):
        kubernetes_validate.validate(crd(), version, strict=True)


def test_the_example_is_accepted_and_resolves() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    validator().validate(example)
    config = resolve(example["spec"])
    assert config.sample_rate == example["spec"]["sampling"]["rate"]


def test_schema_defaults_are_profilis_defaults() -> None:
    for section, fields in BUILTIN_SPEC.items():
        properties = spec_schema(section)["properties"]
        for name, value in fields.items():
            assert properties[name].get("default") == value, f"{section}.{name}"


def test_enums_match_profilis() -> None:
    exporters = spec_schema("exporters")["properties"]["enabled"]["items"]["enum"]
    assert set(exporters) <= EXPORTERS
    disabled = spec_schema("instrumentations")["properties"]["disabled"]["items"]["enum"]
    assert set(disabled) == INSTRUMENTATIONS
    assert tuple(spec_schema("sidecar")["properties"]["imagePullPolicy"]["enum"]) == PULL_POLICIES


BAD: dict[str, dict[str, Any]] = {
    "rate above 1": {"sampling": {"rate": 1.5}},
    "negative rate": {"sampling": {"rate": -0.1}},
    "route without slash": {"sampling": {"excludedRoutes": ["healthz"]}},
    "queue of zero": {"collector": {"queueSize": 0}},
    "flush interval 0": {"collector": {"flushIntervalSeconds": 0}},
    "flush interval 61": {"collector": {"flushIntervalSeconds": 61}},
    "unknown exporter": {"exporters": {"enabled": ["zipkin"]}},
    "otlp endpoint not a URL": {"exporters": {"otlpEndpoint": "collector:4318"}},
    "unknown instrumentation": {"instrumentations": {"disabled": ["django"]}},
    "port 0": {"sidecar": {"metricsPort": 0}},
    "pull policy": {"sidecar": {"imagePullPolicy": "Sometimes"}},
    "bad quantity": {"sidecar": {"resources": {"limits": {"memory": "lots"}}}},
}
#: Fields the schema does not declare -> (the path the API server prunes, the unknown key).
UNKNOWN: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown field": ({"sampling": {"ratio": 0.5}}, ".spec.sampling.ratio", "ratio"),
    "unknown section": ({"tracing": {}}, ".spec.tracing", "tracing"),
    "unknown resource": (
        {"sidecar": {"resources": {"limits": {"nvidia.com/gpu": 1}}}},
        ".spec.sidecar.resources.limits.nvidia.com/gpu",
        "nvidia.com/gpu",
    ),
}


def profilisconfig(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "profilis.io/v1alpha1",
        "kind": "ProfilisConfig",
        "metadata": {"name": "bad", "namespace": "shop"},
        "spec": copy.deepcopy(spec),
    }


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_values_are_refused_by_the_schema_and_by_the_operator(name: str) -> None:
    obj = profilisconfig(BAD[name])
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(obj)
    # The operator refuses the same values, for clusters that skip schema validation.
    with pytest.raises(InvalidConfigError):
        resolve(obj["spec"])


@pytest.mark.parametrize("name", sorted(UNKNOWN))
def test_unknown_fields_are_pruned_by_the_api_server_and_refused_by_the_operator(
    name: str,
) -> None:
    spec, path, key = UNKNOWN[name]
    obj = profilisconfig(spec)
    # Valid for the schema: the API server drops the field (or, under fieldValidation=Strict,
    # refuses the request naming it) rather than failing validation.
    validator().validate(obj)
    assert list(unknown_fields(obj, schema())) == [path]
    # The operator's parser, which also reads the chart's defaults file, names it.
    with pytest.raises(InvalidConfigError, match=re.escape(key)):
        resolve(obj["spec"])


def test_the_example_has_no_field_the_api_server_would_prune() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert list(unknown_fields(example, schema())) == []


def test_cross_field_rules_the_schema_states_in_cel_are_checked_by_the_operator() -> None:
    rules = [r["rule"] for r in spec_schema("collector")["x-kubernetes-validations"]]
    assert rules == ["self.batchMax <= self.queueSize"]
    with pytest.raises(InvalidConfigError, match=r"collector\.batchMax"):
        resolve({"collector": {"queueSize": 10, "batchMax": 11}})
    with pytest.raises(InvalidConfigError, match="otlpEndpoint"):
        resolve({"exporters": {"enabled": ["otlp"]}})


def test_crd_file_is_where_the_chart_expects_it() -> None:
    assert CRD_PATH.parts[-3:] == ("profilis", "crds", "profilisconfig.yaml")
