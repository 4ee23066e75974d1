"""The operator for real (kopf + kmock, through a kubeconfig): workload annotations, restarts,
config changes, the ProfilisConfig status, Events, health, and the webhook it serves."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from tests.operator.conftest import (
    Certificates,
    Cluster,
    eventually,
    https_client,
    operator,
    wait_ready,
)
from tests.operator.pods import config, deployment, pod, review

pytestmark = pytest.mark.asyncio

DEPLOY = "/apis/apps/v1/namespaces/shop/deployments"
CONFIGS = "/apis/profilis.io/v1alpha1/namespaces/shop/profilisconfigs"
INJECT = {"metadata": {"annotations": {"profilis.io/inject": "true"}}}


def template_annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj["spec"]["template"].get("metadata", {}).get("annotations") or {}


async def test_annotate_then_remove_then_opt_out(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    await cluster.create(DEPLOY, deployment("web", "shop"))
    with operator(monkeypatch, certificates):
        await cluster.merge(f"{DEPLOY}/web", INJECT)
        obj = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
        assert template_annotations(obj)["profilis.io/inject"] == "true"
        assert obj["metadata"]["annotations"] == {"profilis.io/inject": "true"}  # nothing else

        await cluster.merge(
            f"{DEPLOY}/web", {"metadata": {"annotations": {"profilis.io/inject": None}}}
        )
        obj = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: not template_annotations(o),
        )
        assert template_annotations(obj) == {}

        opt_out = {"metadata": {"annotations": {"profilis.io/inject": "false"}}}
        await cluster.merge(f"{DEPLOY}/web", opt_out)
        obj = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: template_annotations(o).get("profilis.io/inject") == "false",
        )
        assert "profilis.io/config-hash" not in template_annotations(obj)


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
async def test_other_workload_kinds_are_annotated_too(
    kind: str, cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    plural = kind.lower() + "s"
    workload = deployment("db", "shop", {"profilis.io/inject": "true"})
    workload["kind"] = kind
    del workload["spec"]["replicas"]  # a DaemonSet has none; a StatefulSet defaults to 1
    path = f"/apis/apps/v1/namespaces/shop/{plural}"
    await cluster.create(path, workload)
    with operator(monkeypatch, certificates):
        obj = await eventually(
            lambda: cluster.get(f"{path}/db"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
        assert template_annotations(obj)["profilis.io/inject"] == "true"
        events = await eventually(lambda: _events(cluster), lambda e: len(e) >= 1)
    assert events[0]["reason"] == "ProfilisEnabled"
    assert events[0]["involvedObject"]["kind"] == kind


async def test_restart_resumes_workloads_annotated_while_down(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    await cluster.create(DEPLOY, deployment("web", "shop"))
    with operator(monkeypatch, certificates) as running:
        await wait_ready(running.health_port)
    # Changed while no operator runs: the next one must catch up from its first listing.
    await cluster.merge(f"{DEPLOY}/web", INJECT)
    await cluster.create(
        DEPLOY,
        deployment("api", "shop", {"profilis.io/inject": "true", "profilis.io/config": "slow"}),
    )
    with operator(monkeypatch, certificates):
        web = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
        api = await eventually(
            lambda: cluster.get(f"{DEPLOY}/api"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
    assert template_annotations(web)["profilis.io/inject"] == "true"
    # "slow" does not exist (yet): the hash says so, and the named config is carried along.
    assert template_annotations(api)["profilis.io/config-hash"] == "config-not-found"
    assert template_annotations(api)["profilis.io/config"] == "slow"


async def test_config_change_rolls_the_pod_template(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    await cluster.create(DEPLOY, deployment("web", "shop", {"profilis.io/inject": "true"}))
    with operator(monkeypatch, certificates):
        first = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
        default_hash = template_annotations(first)["profilis.io/config-hash"]

        await cluster.create(CONFIGS, config("tuned", {"sampling": {"rate": 0.5}}))
        second = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: template_annotations(o)["profilis.io/config-hash"] != default_hash,
        )
        tuned_hash = template_annotations(second)["profilis.io/config-hash"]
        assert tuned_hash != default_hash

        await cluster.merge(f"{CONFIGS}/tuned", {"spec": {"sampling": {"rate": 0.25}}})
        third = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: template_annotations(o)["profilis.io/config-hash"] != tuned_hash,
        )
        assert template_annotations(third)["profilis.io/config-hash"] not in (
            default_hash,
            tuned_hash,
        )


async def test_config_status_lists_the_workloads_that_use_it(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    await cluster.create(DEPLOY, deployment("web", "shop", {"profilis.io/inject": "true"}))
    with operator(monkeypatch, certificates):
        await cluster.create(CONFIGS, config("tuned", {"sampling": {"rate": 0.5}}))
        web = await eventually(
            lambda: cluster.get(f"{DEPLOY}/web"),
            lambda o: "profilis.io/config-hash" in template_annotations(o),
        )
        status = await eventually(
            lambda: cluster.get(f"{CONFIGS}/tuned"),
            lambda o: (
                (o.get("status") or {}).get("workloadCount") == 1
                and o["status"].get("configHash")
                == template_annotations(web)["profilis.io/config-hash"]
            ),
        )
        assert status["status"]["workloads"] == [{"kind": "Deployment", "name": "web"}]
        assert status["status"]["valid"] is True

        # The workload stops opting in: the listing (and the Workloads column) follows.
        await cluster.merge(
            f"{DEPLOY}/web", {"metadata": {"annotations": {"profilis.io/inject": None}}}
        )
        status = await eventually(
            lambda: cluster.get(f"{CONFIGS}/tuned"),
            lambda o: o["status"]["workloadCount"] == 0,
        )
        assert status["status"]["workloads"] == []


async def test_invalid_config_is_reported_and_its_pods_are_not_injected(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop")
    bad = config("bad", {"collector": {"queueSize": 10, "batchMax": 100}})
    await cluster.create(CONFIGS, bad)
    with operator(monkeypatch, certificates) as running:
        status = await eventually(
            lambda: cluster.get(f"{CONFIGS}/bad"),
            lambda o: "valid" in (o.get("status") or {}),
        )
        assert status["status"]["valid"] is False
        assert "collector.batchMax" in status["status"]["message"]
        answer = await _post(running.webhook_port, certificates, review(pod()))
        assert answer["response"]["allowed"] is True
        (operation,) = json.loads(base64.b64decode(answer["response"]["patch"]))
        assert operation["path"] == "/metadata/annotations/profilis.io~1skipped"
        assert operation["value"].startswith("invalid-config: ")
        events = await eventually(lambda: _events(cluster), lambda e: len(e) >= 2)
    reasons = {event["reason"] for event in events}
    assert {"InvalidConfig", "ProfilisSkipped"} <= reasons


async def test_webhook_through_the_operator_honours_the_namespace_label(
    cluster: Cluster, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.namespace("shop", {"profilis.io/inject": "enabled"})
    cluster.namespace("quiet")
    with operator(monkeypatch, certificates, "--native-sidecars", "always") as running:
        await wait_ready(running.health_port)
        plain = pod(annotations={})  # no pod annotation: the namespace label decides
        injected = await _post(running.webhook_port, certificates, review(plain))
        assert injected["response"]["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(injected["response"]["patch"]))
        assert any(op["path"] == "/spec/initContainers" for op in ops)

        other = await _post(running.webhook_port, certificates, review(plain, namespace="quiet"))
        assert "patch" not in other["response"]

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{running.health_port}/metrics") as response,
        ):
            metrics = await response.text()
        assert 'profilis_operator_admission_requests_total{result="injected"} 1.0' in metrics
        assert 'profilis_operator_admission_skips_total{reason="not-opted-in"} 1.0' in metrics
        events = await eventually(lambda: _events(cluster), lambda e: len(e) >= 1)
    assert events[0]["reason"] == "ProfilisInjected"
    assert events[0]["involvedObject"]["kind"] == "ReplicaSet"


async def _post(port: int, certificates: Certificates, body: dict[str, Any]) -> Any:
    async with (
        https_client(certificates) as session,
        session.post(f"https://127.0.0.1:{port}/mutate-pods", json=body) as response,
    ):
        assert response.status == 200
        return await response.json()


async def _events(cluster: Cluster) -> list[dict[str, Any]]:
    listing = await cluster.get("/api/v1/namespaces/shop/events")
    return list(listing["items"])
