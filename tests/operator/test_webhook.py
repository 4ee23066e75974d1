"""The webhook over real HTTPS (certificates verified against a trustme CA): real pod specs
in, the expected answers out, every patched pod valid for Kubernetes 1.28 and 1.31, and the
Events it hands to the recorder (none for a dry run)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import pytest_asyncio
import trustme

from profilis.k8s import AGENT_MOUNT_PATH, ANNOTATION_STATUS, SIDECAR_CONTAINER_NAME
from profilis_operator.admission import Admission, AdmissionState, EventSpec
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.health import OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.webhook import CertificateFiles, WebhookServer
from tests.operator import pods
from tests.operator.conftest import Certificates, https_client
from tests.support.processes import free_port

pytestmark = pytest.mark.asyncio

NATIVE = {"1.31.0": True, "1.28.0": False}  # what each version's sidecar looks like


class Webhook:
    def __init__(
        self,
        port: int,
        certificates: Certificates,
        state: AdmissionState,
        events: list[EventSpec] | None = None,
    ) -> None:
        self.port = port
        self.certificates = certificates
        self.state = state
        self.events = events if events is not None else []  # what it handed to the recorder

    async def post(self, body: bytes | dict[str, Any]) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with (
            https_client(self.certificates) as session,
            session.post(
                f"https://127.0.0.1:{self.port}/mutate-pods",
                data=data,
                headers={"Content-Type": "application/json"},
            ) as response,
        ):
            return response.status, await response.json()


@pytest_asyncio.fixture
async def webhook(certificates: Certificates) -> AsyncIterator[Webhook]:
    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(native_sidecars=True),
        excluded_namespaces=frozenset({"kube-system", "profilis-system"}),
        namespaces={"labelled": ["enabled"]},
        ready=True,
    )
    port = free_port()
    events: list[EventSpec] = []
    server = WebhookServer(
        Admission(state),
        CertificateFiles(certificates.cert_file, certificates.key_file),
        OperatorMetrics(),
        host="127.0.0.1",
        port=port,
        record_event=events.append,
        reload_interval_s=0.05,
    )
    await server.start()
    try:
        yield Webhook(port, certificates, state, events)
    finally:
        await server.stop()


def patched(answer: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    response = answer["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(original, operations)  # type: ignore[no-any-return]


def assert_valid(pod: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(pod, version, strict=True)  # raises on any error


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


SCENARIOS = {
    "one container": pods.pod(),
    "several containers, some named": pods.several_containers(),
    "existing init containers and volumes": pods.with_init_containers(),
}


@pytest.mark.parametrize("version", sorted(NATIVE))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_injected_pods_are_valid_kubernetes(
    webhook: Webhook, name: str, version: str
) -> None:
    webhook.state.capabilities = ClusterCapabilities(native_sidecars=NATIVE[version])
    original = SCENARIOS[name]
    status, answer = await webhook.post(pods.review(original))
    assert status == 200
    assert answer["response"]["uid"] == pods.review(original)["request"]["uid"]
    pod = patched(answer, copy.deepcopy(original))
    assert_valid(pod, version)
    assert_valid(original, version)  # the scenario itself was valid to begin with
    sidecars = [
        c for c in pod["spec"].get("initContainers", []) if c.get("restartPolicy") == "Always"
    ]
    if NATIVE[version]:
        assert [c["name"] for c in sidecars] == [SIDECAR_CONTAINER_NAME]
    else:
        assert not sidecars
        assert pod["spec"]["containers"][-1]["name"] == SIDECAR_CONTAINER_NAME
    status_annotation = json.loads(pod["metadata"]["annotations"][ANNOTATION_STATUS])
    assert status_annotation["configHash"] == webhook.state.defaults.digest


async def test_several_containers_follow_the_annotation_and_keep_their_pythonpath(
    webhook: Webhook,
) -> None:
    original = pods.several_containers()
    _, answer = await webhook.post(pods.review(original))
    pod = patched(answer, copy.deepcopy(original))
    web, worker, proxy = pod["spec"]["containers"][:3]
    assert env_of(web)["PYTHONPATH"] == AGENT_MOUNT_PATH
    assert env_of(worker)["PYTHONPATH"] == f"{AGENT_MOUNT_PATH}:/srv/lib:/srv/app"  # prepended
    # Only PYTHONPATH and PROFILIS_* are added: no pod identity the app never asked for.
    assert all(name == "PYTHONPATH" or name.startswith("PROFILIS_") for name in env_of(worker))
    assert "env" not in proxy  # not named: untouched
    assert env_of(web)["PROFILIS_SERVICE_NAME"] == "shop"
    assert env_of(web)["PROFILIS_COLLECTOR_ADDRESS"] == "unix:///var/run/profilis/collector.sock"
    assert json.loads(pod["metadata"]["annotations"][ANNOTATION_STATUS])["containers"] == [
        "web",
        "worker",
    ]


async def test_existing_init_containers_run_first_and_unchanged(webhook: Webhook) -> None:
    original = pods.with_init_containers()
    _, answer = await webhook.post(pods.review(original))
    pod = patched(answer, copy.deepcopy(original))
    init = pod["spec"]["initContainers"]
    assert init[0] == original["spec"]["initContainers"][0]
    assert [c["name"] for c in init[1:]] == ["profilis-agent-install", SIDECAR_CONTAINER_NAME]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {
        "cache",
        "profilis-agent",
        "profilis-run",
    }
    for container in init[1:]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}


async def test_python_path_from_a_secret_is_read_into_a_variable_behind_the_agent(
    webhook: Webhook,
) -> None:
    original = pods.python_path_from_secret()
    _, answer = await webhook.post(pods.review(original))
    env = patched(answer, copy.deepcopy(original))["spec"]["containers"][0]["env"]
    names = [item["name"] for item in env]
    assert names.index("PROFILIS_APP_PYTHONPATH") + 1 == names.index("PYTHONPATH")
    by_name = {item["name"]: item for item in env}
    assert by_name["PROFILIS_APP_PYTHONPATH"]["valueFrom"] == {
        "secretKeyRef": {"name": "paths", "key": "pythonpath"}
    }
    assert by_name["PYTHONPATH"] == {
        "name": "PYTHONPATH",
        "value": f"{AGENT_MOUNT_PATH}:$(PROFILIS_APP_PYTHONPATH)",
    }


NOT_INJECTED = {
    "already injected": lambda: pods.pod(annotations={ANNOTATION_STATUS: '{"version":"2.0.0"}'}),
    "opted out": lambda: pods.pod(annotations={"profilis.io/inject": "false"}),
    "not opted in": lambda: pods.pod(annotations={}),
}


@pytest.mark.parametrize("name", sorted(NOT_INJECTED))
async def test_pods_left_alone(webhook: Webhook, name: str) -> None:
    status, answer = await webhook.post(pods.review(NOT_INJECTED[name]()))
    assert status == 200
    assert answer["response"] == {"uid": pods.review({})["request"]["uid"], "allowed": True}


SKIPPED = {
    "host-network": lambda: pods.pod(hostNetwork=True),
    "windows-pod": lambda: pods.pod(os={"name": "windows"}),
    "config-not-found": lambda: pods.pod(
        annotations={"profilis.io/inject": "true", "profilis.io/config": "nope"}
    ),
}


@pytest.mark.parametrize("reason", sorted(SKIPPED))
async def test_pods_skipped_are_admitted_as_they_are_and_say_why(
    webhook: Webhook, reason: str
) -> None:
    original = SKIPPED[reason]()
    _, answer = await webhook.post(pods.review(original))
    pod = patched(answer, copy.deepcopy(original))
    skipped = pod["metadata"]["annotations"].pop("profilis.io/skipped")
    assert skipped.startswith(f"{reason}: ")
    assert pod == original
    assert [(e.type, e.reason) for e in webhook.events] == [("Warning", "ProfilisSkipped")]
    assert f"({reason})" in webhook.events[0].message


@pytest.mark.parametrize("namespace", ["kube-system", "profilis-system"])
async def test_excluded_namespaces(webhook: Webhook, namespace: str) -> None:
    _, answer = await webhook.post(pods.review(pods.pod(), namespace=namespace))
    assert "patch" not in answer["response"]


async def test_namespace_label_opts_in_and_pod_annotation_opts_out(webhook: Webhook) -> None:
    plain = pods.pod(annotations={})
    _, answer = await webhook.post(pods.review(plain, namespace="labelled"))
    assert "patch" in answer["response"]
    opted_out = pods.pod(annotations={"profilis.io/inject": "false"})
    _, answer = await webhook.post(pods.review(opted_out, namespace="labelled"))
    assert "patch" not in answer["response"]


EVENTFUL: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "injected": (pods.pod, "ProfilisInjected"),
    "skipped": (
        lambda: pods.pod(annotations={"profilis.io/inject": "true", "profilis.io/config": "nope"}),
        "ProfilisSkipped",
    ),
}


@pytest.mark.parametrize("name", sorted(EVENTFUL))
async def test_a_dry_run_gets_the_same_answer_and_records_no_event(
    webhook: Webhook, name: str
) -> None:
    make_pod, reason = EVENTFUL[name]
    _, dry = await webhook.post(pods.review(make_pod(), dryRun=True))
    assert webhook.events == []  # sideEffects: NoneOnDryRun
    _, real = await webhook.post(pods.review(make_pod()))
    assert [event.reason for event in webhook.events] == [reason]
    assert dry["response"] == real["response"]
    pod = patched(real, pods.pod())
    annotations = pod["metadata"]["annotations"]
    assert (ANNOTATION_STATUS in annotations) == (name == "injected")
    assert ("profilis.io/skipped" in annotations) == (name == "skipped")


MALFORMED: dict[str, bytes | dict[str, Any]] = {
    "not json": b"{nope",
    "empty body": b"",
    "json array": b"[1, 2]",
    "no request": {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
    "wrong kind": {**pods.review(pods.pod()), "kind": "Pod"},
    "no object": pods.review(None),
    "pod without spec": pods.review({"metadata": {"name": "x"}}),
    "update, not create": pods.review(pods.pod(), operation="UPDATE"),
    "a deployment": pods.review(
        pods.pod(), resource={"group": "apps", "version": "v1", "resource": "deployments"}
    ),
    "containers not a list": pods.review(pods.pod(containers={"web": {}})),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_malformed_or_unexpected_requests_are_allowed_unchanged(
    webhook: Webhook, name: str
) -> None:
    status, answer = await webhook.post(MALFORMED[name])
    assert status == 200
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


async def test_certificate_rotation_is_picked_up_without_a_restart(
    webhook: Webhook, certificates: Certificates, tmp_path: Path
) -> None:
    _, before = await webhook.post(pods.review(pods.pod()))
    new_ca = trustme.CA()
    issued = new_ca.issue_cert("127.0.0.1")
    issued.private_key_pem.write_to_path(str(certificates.key_file))
    issued.cert_chain_pems[0].write_to_path(str(certificates.cert_file))
    await asyncio.sleep(0.3)  # a few reload intervals
    rotated = Webhook(
        webhook.port,
        Certificates(new_ca, certificates.cert_file, certificates.key_file),
        webhook.state,
    )
    _, after = await rotated.post(pods.review(pods.pod()))
    assert after["response"]["allowed"] is True and before["response"]["allowed"] is True
    with pytest.raises(Exception, match="certificate verify failed"):
        await webhook.post(pods.review(pods.pod()))  # the old CA no longer matches
