"""The chart's ClusterRole is enough, and nothing is left to chance: the operator, started
with the command line the chart renders, runs a whole scenario against the API emulator
(workloads annotated, ProfilisConfigs indexed and their status written, Events, the
self-signed caBundle), and every call it made must be allowed by the rendered rules."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from tests.chart.helm import SCENARIOS, Helm, HelmUnavailableError, find_or_fetch_helm
from tests.operator.conftest import Cluster, admit, eventually, operator, wait_ready
from tests.operator.pods import WEBHOOK_CONFIGS, config, deployment, webhook_configuration

pytestmark = pytest.mark.asyncio

CONFIGS = "/apis/profilis.io/v1alpha1/namespaces/shop/profilisconfigs"
DEPLOY = "/apis/apps/v1/namespaces/shop/deployments"
#: Calls everyone authenticated may make (the system:discovery ClusterRole).
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi")
#: The operator's and kopf's user agents; the test's own calls carry aiohttp's.
OPERATOR_AGENTS = ("profilis-operator/", "kopf/")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    try:
        helm = Helm(find_or_fetch_helm())
    except HelmUnavailableError as exc:
        pytest.skip(f"no helm here: {exc}")
    return helm.template([SCENARIOS / "self-signed-values.yaml"])


def one(manifests: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind]
    return found


def verb_of(method: str, name: str | None, params: Mapping[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def allowed(
    rules: list[Mapping[str, Any]], group: str, resource: str, verb: str, name: str | None
) -> bool:
    for rule in rules:
        names = rule.get("resourceNames")
        if (
            group in rule.get("apiGroups", ())
            and resource in rule.get("resources", ())
            and verb in rule.get("verbs", ())
            and (not names or name in names)
        ):
            return True
    return False


async def test_every_call_the_operator_makes_is_allowed_by_the_charts_cluster_role(
    rendered: list[dict[str, Any]],
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    args = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    # The test's own ports and a writable certificate directory; the rest as rendered.
    chart_args = [a for a in args if not a.startswith(("--webhook-port=", "--health-port="))]
    config_name = one(rendered, "MutatingWebhookConfiguration")["metadata"]["name"]
    cluster.namespace("shop", {"profilis.io/inject": "enabled"})
    await cluster.create(WEBHOOK_CONFIGS, webhook_configuration(config_name))
    await cluster.create(DEPLOY, deployment("web", "shop", {"profilis.io/inject": "true"}))
    extra = [*chart_args, "--cert-dir", str(tmp_path / "certs"), "--ca-bundle-interval", "0.2"]
    with operator(monkeypatch, None, *extra) as running:
        await wait_ready(running.health_port)
        await cluster.create(CONFIGS, config("tuned", {"sampling": {"rate": 0.5}}))
        await cluster.create(CONFIGS, config("broken", {"collector": {"queueSize": 0}}))
        status = await eventually(
            lambda: cluster.get(f"{CONFIGS}/broken"), lambda o: "valid" in (o.get("status") or {})
        )
        assert status["status"]["valid"] is False
        configuration = await eventually(
            lambda: cluster.get(f"{WEBHOOK_CONFIGS}/{config_name}"),
            lambda c: bool(c["webhooks"][0]["clientConfig"].get("caBundle")),
        )
        ca_pem = base64.b64decode(configuration["webhooks"][0]["clientConfig"]["caBundle"])
        service = dict(a.split("=", 1) for a in chart_args if "=" in a)["--webhook-service"]
        answer = await admit(running.webhook_port, ca_pem, f"{service}.profilis-system.svc")
        assert answer["response"]["allowed"] is True
        await eventually(
            lambda: cluster.get("/api/v1/namespaces/shop/events"),
            lambda listing: len(listing["items"]) >= 3,
        )

    mine = [
        request
        for request in cluster.kmock._requests
        if request.headers.get("User-Agent", "").startswith(OPERATOR_AGENTS)
    ]
    calls = {
        (
            request.resource.group,
            request.resource.plural + (f"/{request.subresource}" if request.subresource else ""),
            verb_of(request.method.value, request.name, request.params),
            request.name,
        )
        for request in mine
        if request.resource is not None and request.resource.plural
    }
    others = {
        request.url.path
        for request in mine
        if request.resource is None or not request.resource.plural
    }
    rules = one(rendered, "ClusterRole")["rules"]
    refused = sorted(str(c) for c in calls if not allowed(rules, *c))
    assert not refused, f"the chart's ClusterRole does not allow: {refused}"
    assert all(path.startswith(DISCOVERY_PREFIXES) for path in others), others
    # The scenario did reach every kind of call the rules are there for.
    resources = {resource for _, resource, _, _ in calls}
    assert {
        "deployments",
        "profilisconfigs",
        "profilisconfigs/status",
        "events",
        "namespaces",
        "mutatingwebhookconfigurations",
    } <= resources, resources
