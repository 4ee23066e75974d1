"""The dashboard switch and token of a ProfilisConfig: resolved with errors naming the field,
held equal to the CRD's schema, and turned into the sidecar's env (a secretKeyRef: the token's
value is never in the pod spec, the patch or the operator)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import pytest
import yaml

from profilis_operator.effective_config import SecretKeyRef, resolve
from profilis_operator.errors import InvalidConfigError
from profilis_operator.injection import ClusterCapabilities, inject
from tests.operator import pods

CRD = Path(__file__).resolve().parents[2] / "charts/profilis/crds/profilisconfig.yaml"
SCHEMA = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
TOKEN = {"tokenSecretRef": {"name": "profilis-ui", "key": "token"}}


def sidecar_env(spec: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = pods.pod()
    injection = inject(pod, resolve(spec, defaults), ClusterCapabilities(native_sidecars=True))
    assert injection.injected, injection.message
    patched = jsonpatch.apply_patch(copy.deepcopy(pod), injection.patch)
    (sidecar,) = [c for c in patched["spec"]["initContainers"] if c["name"] == "profilis-sidecar"]
    return {item["name"]: item for item in sidecar["env"]}


def test_by_default_the_page_is_on_without_a_token() -> None:
    config = resolve({})
    assert config.dashboard_enabled and config.dashboard_token is None
    env = sidecar_env({})
    assert env["PROFILIS_SIDECAR_UI"] == {"name": "PROFILIS_SIDECAR_UI", "value": "on"}
    assert "PROFILIS_SIDECAR_UI_TOKEN" not in env


def test_the_token_comes_from_a_secret_key_ref() -> None:
    env = sidecar_env({"dashboard": TOKEN})
    assert env["PROFILIS_SIDECAR_UI_TOKEN"] == {
        "name": "PROFILIS_SIDECAR_UI_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "profilis-ui", "key": "token", "optional": True}},
    }
    # A missing Secret closes the page instead of keeping the pod from starting.
    assert env["PROFILIS_SIDECAR_UI"]["value"] == "token"


def test_off_turns_the_page_off_and_drops_the_token() -> None:
    env = sidecar_env({"dashboard": {"enabled": False, **TOKEN}})
    assert env["PROFILIS_SIDECAR_UI"]["value"] == "off"
    assert "PROFILIS_SIDECAR_UI_TOKEN" not in env


def test_the_operators_defaults_apply_unless_the_config_writes_the_section() -> None:
    defaults = {"dashboard": {"enabled": True, **TOKEN}}
    assert resolve({}, defaults).dashboard_token == SecretKeyRef("profilis-ui", "token")
    # A section written in a ProfilisConfig is complete: no token unless it names one.
    own = resolve({"dashboard": {"enabled": True}}, defaults)
    assert own.dashboard_token is None
    # The setting is part of the config's digest: changing it rolls the pods.
    assert resolve({}, defaults).digest != own.digest
    assert resolve({}, resolve({}, defaults).to_spec()) == resolve({}, defaults)


@pytest.mark.parametrize(
    ("dashboard", "field"),
    [
        ({"enabled": "yes"}, "dashboard.enabled"),
        (
            {"tokenSecretRef": {"name": "Profilis_UI", "key": "token"}},
            "dashboard.tokenSecretRef.name",
        ),
        ({"tokenSecretRef": {"name": "ui", "key": "a/b"}}, "dashboard.tokenSecretRef.key"),
        ({"tokenSecretRef": {"name": "ui", "key": ".."}}, "dashboard.tokenSecretRef.key"),
        ({"tokenSecretRef": {"name": "ui"}}, "dashboard.tokenSecretRef"),
        ({"token": "plain"}, "dashboard"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_field(dashboard: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        resolve({"dashboard": dashboard})
    assert field in str(caught.value)


def test_the_crd_schema_accepts_and_refuses_the_same_shapes() -> None:
    spec_schema = SCHEMA["properties"]["spec"]["properties"]["dashboard"]
    assert spec_schema["properties"]["enabled"]["default"] is resolve({}).dashboard_enabled
    jsonschema.validate({"enabled": False, **TOKEN}, spec_schema)
    for bad in ({"tokenSecretRef": {"name": "UI", "key": "t"}}, {"tokenSecretRef": {"key": "t"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, spec_schema)
        with pytest.raises(InvalidConfigError):
            resolve({"dashboard": bad})
