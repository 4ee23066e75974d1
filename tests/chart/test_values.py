"""values.yaml, values.schema.json and the README's values table agree, and bad values are
refused by helm before anything is rendered."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.helm import CHART, REPO, Helm

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
#: Kubernetes objects passed through as they are (the API server checks them); each is an
#: object with a description, only its inside is free.
PASS_THROUGH = {
    "operator.affinity.nodeAffinity",
    "operator.affinity.podAffinity",
    "operator.affinity.podAntiAffinity",
    "operator.extraEnv[].valueFrom",
    "defaultConfig.spec",
    "global",
}


def load_values_doc() -> ModuleType:
    path = REPO / "scripts" / "chart_values_doc.py"
    spec = importlib.util.spec_from_file_location("chart_values_doc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


VALUES_DOC = load_values_doc()


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    node = resolve(node)
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{key}" if path else key)
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")


def test_every_values_key_has_a_comment() -> None:
    keys = VALUES_DOC.parse_values((CHART / "values.yaml").read_text())
    assert len(keys) > 50, "the parser found too few keys to be reading the file"
    missing = [key.path for key in keys if not key.comment]
    assert not missing, f"keys without a comment right above them: {missing}"


def test_the_schema_and_values_yaml_have_the_same_keys() -> None:
    in_values = {key.path for key in VALUES_DOC.parse_values((CHART / "values.yaml").read_text())}
    in_schema = {
        path
        for path, _ in schema_nodes(SCHEMA)
        if path and "[]" not in path and "*" not in path and path != "global"
    }
    assert in_values - in_schema == set(), "keys the schema would refuse"
    # Optional parts of Kubernetes types (a memory limit's sibling ephemeral-storage, the
    # kinds of affinity) are accepted without being spelled out in values.yaml.
    optional = ("operator.affinity.", ".resources.requests.", ".resources.limits.", "Selector.")
    undocumented = {path for path in in_schema - in_values if not any(o in path for o in optional)}
    assert undocumented == set(), "schema keys values.yaml does not document"


def test_every_schema_node_is_described_and_closed() -> None:
    for path, node in schema_nodes(SCHEMA):
        if path and not path.endswith(("[]", ".*")):  # list items and map values: unnamed
            assert node.get("description"), f"{path} has no description"
        is_object = node.get("type") == "object"
        if is_object and path not in PASS_THROUGH:
            assert "additionalProperties" in node, f"{path} accepts any key"
            assert node["additionalProperties"] is not True, f"{path} accepts any key"


def test_the_default_values_pass_the_schema() -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(VALUES)


def test_the_readme_values_table_is_current() -> None:
    assert VALUES_DOC.main(["--check"]) == 0, "run: python scripts/chart_values_doc.py --write"


def test_the_table_shows_defaults_and_comments() -> None:
    table = VALUES_DOC.render_table(VALUES_DOC.parse_values((CHART / "values.yaml").read_text()))
    assert '| `webhook.failurePolicy` | `"Ignore"` | What the API server does' in table
    assert '| `webhook.excludedNamespaces` | `["kube-node-lease", "kube-public"]` |' in table


BAD_VALUES = {
    "an enum outside its values": (["--set", "webhook.failurePolicy=Sometimes"], "failurePolicy"),
    "a wrong type": (["--set", "operator.replicas=two"], "operator.replicas"),
    "negative replicas": (["--set", "operator.replicas=-1"], "operator.replicas"),
    "an unknown key": (["--set", "operator.replica=2"], "replica"),
    "an unknown top-level key": (["--set", "webhooks.failurePolicy=Ignore"], "webhooks"),
    "a timeout above 5 s": (["--set", "webhook.timeoutSeconds=10"], "timeoutSeconds"),
    "root": (["--set", "securityContext.runAsUser=0"], "runAsUser"),
    "a bad certificate mode": (["--set", "certificates.mode=vault"], "mode"),
    "a sampling rate above 1": (["--set", "injection.sampling.rate=2"], "rate"),
    "an unknown exporter": (["--set", "injection.exporters.enabled={jaeger}"], "enabled"),
    "a bad quantity": (["--set", "injection.sidecar.resources.limits.memory=lots"], "memory"),
    "a bad scrape interval": (["--set", "monitoring.podMonitor.interval=soon"], "interval"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_values_are_refused_by_the_schema(helm: Helm, case: str) -> None:
    args, named = BAD_VALUES[case]
    result = helm.run(*helm.template_args(), *args)
    assert result.returncode != 0, f"helm accepted {args}"
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert named in result.stderr


def test_a_bad_values_file_is_refused(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("webhook:\n  failurePolicy: Sometimes\n  timeoutSeconds: '3'\n")
    result = helm.run(*helm.template_args(values_files=[bad]))
    assert result.returncode != 0
    assert "failurePolicy" in result.stderr and "timeoutSeconds" in result.stderr


def test_self_signed_certificates_refuse_several_replicas(helm: Helm) -> None:
    args = ["--set", "certificates.mode=selfSigned", "--set", "operator.replicas=2"]
    result = helm.run(*helm.template_args(), *args)
    assert result.returncode != 0
    assert "selfSigned needs operator.replicas 1" in result.stderr
