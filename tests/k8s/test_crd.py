"""The ProfilisConfig CRD on the real API server: accepted as a structural schema and
Established; the examples are accepted; every invalid spec of the offline tests is refused
by the API server itself (OpenAPI schema, CEL rules, and unknown fields under strict field
validation, as kubectl sends by default)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import yaml
from kubernetes.client.rest import ApiException

from tests.k8s.kube import GROUP, PLURAL, VERSION, Kube, profilis_config
from tests.operator.test_crd import BAD, EXAMPLE, UNKNOWN
from tests.support.controlplane import REPO_ROOT

CRD_FILE = REPO_ROOT / "charts" / "profilis" / "crds" / "profilisconfig.yaml"
#: Cross-field rules the schema states in CEL (x-kubernetes-validations).
CEL_BAD = {
    "batchMax above queueSize": {"collector": {"queueSize": 10, "batchMax": 11}},
    "otlp without an endpoint": {"exporters": {"enabled": ["prometheus", "otlp"]}},
}


@pytest.fixture(scope="module")
def crd(kube: Kube) -> Iterator[str]:
    """The chart's CRD, created as helm creates it (crds/ is applied before the templates)."""
    (name,) = kube.apply_crds([CRD_FILE])
    yield name


def test_the_crd_is_established_with_the_status_subresource(kube: Kube, crd: str) -> None:
    stored = kube.extensions.read_custom_resource_definition(crd)
    conditions = {c.type: c.status for c in stored.status.conditions}
    assert conditions["Established"] == "True"
    assert conditions.get("NonStructuralSchema") is None
    (version,) = stored.spec.versions
    assert version.subresources.status is not None


def test_the_example_is_accepted_with_strict_field_validation(
    kube: Kube, crd: str, namespace: str
) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    example["metadata"]["namespace"] = namespace
    created = kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, example, field_validation="Strict"
    )
    assert created["spec"]["sampling"] == example["spec"]["sampling"]
    # Defaults the schema declares are filled in by the API server.
    assert created["spec"]["collector"]["flushIntervalSeconds"] == 0.1


def test_an_empty_spec_is_accepted_and_defaulted(kube: Kube, crd: str, namespace: str) -> None:
    created = kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, profilis_config("empty", {}), field_validation="Strict"
    )
    assert created["spec"] == {}


@pytest.mark.parametrize("case", sorted({**BAD, **CEL_BAD}))
def test_an_invalid_spec_is_refused_by_the_api_server(
    kube: Kube, crd: str, namespace: str, case: str
) -> None:
    spec = copy.deepcopy({**BAD, **CEL_BAD}[case])
    with pytest.raises(ApiException) as refused:
        kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, profilis_config("bad", spec)
        )
    assert refused.value.status == 422, refused.value.body
    assert "ProfilisConfig.profilis.io" in refused.value.body


@pytest.mark.parametrize("case", sorted(UNKNOWN))
def test_an_unknown_field_is_refused_under_strict_field_validation(
    kube: Kube, crd: str, namespace: str, case: str
) -> None:
    spec, path, _ = UNKNOWN[case]
    with pytest.raises(ApiException) as refused:
        kube.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            profilis_config("bad", copy.deepcopy(spec)),
            field_validation="Strict",  # what kubectl sends by default
        )
    assert refused.value.status == 400, refused.value.body
    assert f'unknown field \\"{path.lstrip(".")}\\"' in refused.value.body


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("batchMax above queueSize", "batchMax must not exceed queueSize"),
        ("otlp without an endpoint", "otlpEndpoint is required"),
    ],
)
def test_a_cel_rule_refuses_with_its_own_message(
    kube: Kube, crd: str, namespace: str, case: str, message: str
) -> None:
    with pytest.raises(ApiException) as refused:
        kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, profilis_config("bad", CEL_BAD[case])
        )
    assert message in refused.value.body


def test_without_strict_validation_unknown_fields_are_pruned_not_stored(
    kube: Kube, crd: str, namespace: str
) -> None:
    spec = {"sampling": {"rate": 0.5, "ratio": 0.1}, "tracing": {}}
    created = kube.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        profilis_config("pruned", spec),
        field_validation="Ignore",
    )
    assert "tracing" not in created["spec"]
    assert created["spec"]["sampling"]["rate"] == 0.5
    assert "ratio" not in created["spec"]["sampling"]
