"""The custom resources the chart renders, against their schemas.

ProfilisConfig is validated against the openAPIV3Schema of the chart's own CRD (crds/), and
also for fields that schema does not know (the API server would prune them without a word, or
refuse them under fieldValidation=Strict; tests.chart.structural.unknown_fields).
Prometheus Operator and cert-manager objects are validated against tests/chart/custom_schemas.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.custom_schemas import SCHEMAS
from tests.chart.helm import CHART, Manifest, scenarios
from tests.chart.manifests import of_kind
from tests.chart.structural import unknown_fields

SCENARIOS = scenarios()
CRD_FILE = CHART / "crds" / "profilisconfig.yaml"


def profilisconfig_schema() -> dict[str, Any]:
    assert CRD_FILE.is_file(), f"{CRD_FILE} is missing: the chart installs the CRD from there"
    crd = yaml.safe_load(CRD_FILE.read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["group"] == "profilis.io"
    assert crd["spec"]["names"]["kind"] == "ProfilisConfig"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    assert version["served"], "v1alpha1 must be served for the chart's ProfilisConfig"
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def custom_resources(render: Render, scenario: str, kind: str) -> list[Manifest]:
    return of_kind(render(SCENARIOS[scenario], KUBE_VERSIONS[-1]), kind)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_profilisconfigs_match_the_crd(render: Render, scenario: str) -> None:
    schema = profilisconfig_schema()
    for config in custom_resources(render, scenario, "ProfilisConfig"):
        jsonschema.Draft7Validator(schema).validate(config)
        assert not list(unknown_fields(config, schema)), "fields the CRD would prune"


def test_a_scenario_renders_a_profilisconfig(render: Render) -> None:
    # Otherwise the check above would pass without looking at anything.
    (config,) = custom_resources(render, "high-availability", "ProfilisConfig")
    assert config["metadata"]["namespace"] == "team-a"
    assert config["spec"]["sampling"]["rate"] == 0.25


def test_a_misspelt_profilisconfig_field_is_caught() -> None:
    schema = profilisconfig_schema()
    config = {
        "apiVersion": "profilis.io/v1alpha1",
        "kind": "ProfilisConfig",
        "metadata": {"name": "x"},
        "spec": {"sampling": {"rate": 0.5}, "samplng": {}},
    }
    assert list(unknown_fields(config, schema)) == [".spec.samplng"]


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_third_party_custom_resources_match_their_schemas(
    render: Render, scenario: str, kind: str
) -> None:
    for resource in custom_resources(render, scenario, kind):
        jsonschema.Draft202012Validator(SCHEMAS[kind]).validate(resource)


@pytest.mark.parametrize(
    ("scenario", "kinds"),
    [
        ("default", {"PodMonitor", "ServiceMonitor", "PrometheusRule"}),
        ("cert-manager", {"Certificate", "Issuer", "PodMonitor"}),
        ("cert-manager-cluster-issuer", {"Certificate"}),
    ],
)
def test_the_custom_resources_checked_above_are_rendered(
    render: Render, scenario: str, kinds: set[str]
) -> None:
    rendered = {m["kind"] for m in render(SCENARIOS[scenario], KUBE_VERSIONS[-1])}
    assert kinds <= rendered
