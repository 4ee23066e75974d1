"""The chart starts the operator the way the operator reads it.

The rendered command line and environment go through profilis-operator's own parser
(``profilis_operator.cli``), with the rendered defaults file, so a flag or variable the chart
spells differently from the operator fails here, not in a cluster. The names the operator is
given must be the names the chart renders (Service, webhook configuration, namespaces).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from profilis_operator.cli import build_parser, options_from_args
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.options import OperatorOptions
from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import NAMESPACE, Manifest, scenarios
from tests.chart.manifests import of_kind, one

SCENARIOS = scenarios()


def operator_container(manifests: list[Manifest]) -> dict[str, Any]:
    (container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def operator_options(manifests: list[Manifest], tmp_path: Path) -> OperatorOptions:
    """What profilis-operator would run with, in the pod the chart renders."""
    container = operator_container(manifests)
    assert container["command"] == ["profilis-operator"]
    (defaults_map,) = [
        m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-defaults")
    ]
    defaults_file = tmp_path / "defaults.yaml"
    defaults_file.write_text(defaults_map["data"]["defaults.yaml"])
    environ = {}
    for item in container["env"]:
        if "value" in item:
            environ[item["name"]] = item["value"]
        elif item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            environ[item["name"]] = NAMESPACE
    # The file is mounted from the ConfigMap at the path the variable names.
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "defaults"]
    assert environ["PROFILIS_OPERATOR_DEFAULTS"] == f"{mount['mountPath']}/defaults.yaml"
    environ["PROFILIS_OPERATOR_DEFAULTS"] = str(defaults_file)
    args = build_parser().parse_args(container["args"])
    return options_from_args(args, environ)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_operator_accepts_its_rendered_command_line(
    render: Render, scenario: str, tmp_path: Path
) -> None:
    manifests = render(SCENARIOS[scenario], KUBE_VERSIONS[-1])
    options = operator_options(manifests, tmp_path)
    container = operator_container(manifests)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert options.webhook_port == ports["webhook"]
    assert options.health_port == ports["metrics"]
    assert options.namespace == NAMESPACE
    # The operator's own list of skipped namespaces is the webhook selector's.
    webhook = one(manifests, "MutatingWebhookConfiguration")["webhooks"][0]
    (by_name,) = [
        e
        for e in webhook["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
    ]
    assert options.all_excluded_namespaces == set(by_name["values"])
    # The image it injects is the one it runs.
    assert options.defaults.image == container["image"]
    assert options.defaults.image_pull_policy == container["imagePullPolicy"]


def test_self_signed_mode_names_the_rendered_service_and_configuration(
    render: Render, tmp_path: Path
) -> None:
    manifests = render(SCENARIOS["self-signed"], KUBE_VERSIONS[-1])
    options = operator_options(manifests, tmp_path)
    assert options.self_signed
    assert options.webhook_service == one(manifests, "Service")["metadata"]["name"]
    config = one(manifests, "MutatingWebhookConfiguration")
    assert options.webhook_config_name == config["metadata"]["name"]
    # Its certificate files go to a writable place: the /tmp emptyDir.
    mounts = {m["mountPath"] for m in operator_container(manifests)["volumeMounts"]}
    assert any(options.cert_dir.is_relative_to(path) for path in mounts)


def test_helm_mode_points_the_operator_at_the_mounted_certificate(
    render: Render, tmp_path: Path
) -> None:
    manifests = render(None, KUBE_VERSIONS[-1])
    options = operator_options(manifests, tmp_path)
    assert not options.self_signed
    assert options.tls_cert_file is not None and options.tls_key_file is not None
    (mount,) = [
        m for m in operator_container(manifests)["volumeMounts"] if m["name"] == "webhook-tls"
    ]
    assert options.tls_cert_file.parent == Path(mount["mountPath"])
    assert options.tls_key_file.parent == Path(mount["mountPath"])


def test_the_charts_injection_defaults_are_the_operators_own(
    render: Render, tmp_path: Path
) -> None:
    # A plain install behaves like the operator's built-in defaults: values.yaml restates
    # them for users to read and change, and must not drift from them.
    options = operator_options(render(None, KUBE_VERSIONS[-1]), tmp_path)
    built_in = InjectionConfig(image=options.defaults.image)
    assert options.defaults == built_in


def test_injection_values_reach_the_operator(render: Render, tmp_path: Path) -> None:
    options = operator_options(render(SCENARIOS["high-availability"], KUBE_VERSIONS[-1]), tmp_path)
    assert options.defaults.sample_rate == 0.5
    assert options.defaults.exclude_routes == ("/healthz", "/metrics")
    assert options.defaults.exporters == ("prometheus", "otlp")
    assert options.defaults.otlp_endpoint == "http://otel-collector.observability.svc:4318"
    assert "ingress-nginx" in options.all_excluded_namespaces


def test_a_changed_default_rolls_the_operator(render: Render) -> None:
    plain = one(render(None, KUBE_VERSIONS[-1]), "Deployment")
    changed = one(render(SCENARIOS["high-availability"], KUBE_VERSIONS[-1]), "Deployment")
    key = "checksum/defaults"
    annotations = plain["spec"]["template"]["metadata"]["annotations"]
    assert annotations[key] != changed["spec"]["template"]["metadata"]["annotations"][key]


def test_defaults_file_is_yaml_of_a_spec(render: Render) -> None:
    (defaults_map,) = [
        m
        for m in of_kind(render(None, KUBE_VERSIONS[-1]), "ConfigMap")
        if m["metadata"]["name"].endswith("-defaults")
    ]
    spec = yaml.safe_load(defaults_map["data"]["defaults.yaml"])
    # The image travels in PROFILIS_OPERATOR_IMAGE only: one place, no disagreement.
    assert "image" not in spec["sidecar"]
    assert "otlpEndpoint" not in spec["exporters"]
