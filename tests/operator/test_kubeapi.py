"""The operator's own API client (``profilis_operator.kubeapi``) against real servers.

First TLS as ordinary kubeconfigs set it up: an HTTPS server on 127.0.0.1 with a trustme CA,
demanding a client certificate, reached through a kubeconfig with base64 data as kubectl
writes it and read by kopf's ``login_with_kubeconfig``. These servers run on the test's own
event loop, so each answer also shows that the client's calls leave the loop free. Then the
calls against kmock, as an API server receives them (paths, patch types, user agent, bodies),
and the Event recorder's failures and full queue.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from profilis_operator import certs
from profilis_operator.admission import EventSpec
from profilis_operator.events import EventRecorder
from profilis_operator.kubeapi import ApiError, KubeApi, connection_info
from tests.operator.conftest import Cluster, eventually
from tests.operator.pods import WEBHOOK_CONFIGS, deployment, webhook_configuration
from tests.support.processes import free_port

pytestmark = pytest.mark.asyncio

Login = Callable[[], "kopf.ConnectionInfo | None"]
#: What an API server answers on /version (every field the client's VersionInfo requires).
VERSION = {
    "major": "1",
    "minor": "31+",
    "gitVersion": "v1.31.4",
    "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean",
    "buildDate": "2024-12-10T18:51:05Z",
    "goVersion": "go1.22.10",
    "compiler": "gc",
    "platform": "linux/amd64",
}
CLIENT_NAME = "profilis-operator-test"


@dataclass
class FakeApiServer:
    """Serves GET /version[/] and remembers each caller: headers, client certificate subject."""

    url: str
    #: None serves anyone; else only callers sending exactly this Authorization header.
    authorization: str | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def version(self, request: web.Request) -> web.Response:
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        self.seen.append({"headers": dict(request.headers), "subject": subject})
        if self.authorization and request.headers.get("Authorization") != self.authorization:
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        return web.json_response(VERSION)


@contextlib.asynccontextmanager
async def serve(
    context: ssl.SSLContext | None, authorization: str | None = None
) -> AsyncIterator[FakeApiServer]:
    port = free_port()
    scheme = "https" if context is not None else "http"
    server = FakeApiServer(f"{scheme}://127.0.0.1:{port}", authorization)
    app = web.Application()
    app.router.add_get("/version", server.version)
    app.router.add_get("/version/", server.version)  # the official client's path
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield server
    finally:
        await runner.cleanup()


@dataclass
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert

    def server_context(self, *, require_client_certificate: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        if require_client_certificate:
            self.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@pytest.fixture
def pki() -> Pki:
    ca = trustme.CA()
    return Pki(ca, ca.issue_cert("127.0.0.1"), ca.issue_cert(common_name=CLIENT_NAME))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_login(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
    cluster: dict[str, Any],
    user: dict[str, Any],
) -> Login:
    """Write a kubeconfig as kubectl would; return kopf's login from it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path = directory / "kubeconfig"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    settings = kopf.OperatorSettings()
    return lambda: kopf.login_with_kubeconfig(settings=settings)


@pytest_asyncio.fixture
async def open_api() -> AsyncIterator[Callable[[Login], KubeApi]]:
    opened: list[KubeApi] = []

    def make(login: Login) -> KubeApi:
        opened.append(KubeApi(login))
        return opened[-1]

    yield make
    for api in opened:
        await api.close()


async def test_a_kubeconfig_with_inline_certificates_verifies_tls_both_ways(
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_api: Callable[[Login], KubeApi],
) -> None:
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill_root))
    context = pki.server_context(require_client_certificate=True)
    async with serve(context) as server:
        login = kubeconfig_login(
            tmp_path,
            monkeypatch,
            server.url,
            {"certificate-authority-data": b64(pki.ca.cert_pem.bytes())},
            {
                "client-certificate-data": b64(pki.client.cert_chain_pems[0].bytes()),
                "client-key-data": b64(pki.client.private_key_pem.bytes()),
            },
        )
        info = login()
        assert info is not None and isinstance(info.ca_data, str)
        assert not info.ca_data.startswith("-----BEGIN")  # base64 text, not PEM
        api = open_api(login)
        assert await api.server_version() == (1, 31)
        # The inline key went to a private directory, for as long as the client lives.
        (spilled,) = spill_root.iterdir()
        assert stat.S_IMODE(spilled.stat().st_mode) == 0o700
        assert {stat.S_IMODE(f.stat().st_mode) for f in spilled.iterdir()} == {0o600}
        await api.close()
        assert list(spill_root.iterdir()) == []
    (call,) = server.seen
    assert call["subject"]["commonName"] == CLIENT_NAME  # the server verified our certificate
    assert call["headers"]["User-Agent"].startswith("profilis-operator/")


CREDENTIALS = {
    "token, CA data": ("data", {"token": "s3cr3t"}, "Bearer s3cr3t"),
    "token, CA file": ("file", {"token": "s3cr3t"}, "Bearer s3cr3t"),
    "basic auth, CA data": (
        "data",
        {"username": "admin", "password": "pa:ss"},
        "Basic " + b64(b"admin:pa:ss"),
    ),
}


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
async def test_a_kubeconfig_with_credentials_and_a_ca(
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_api: Callable[[Login], KubeApi],
    name: str,
) -> None:
    ca_as, user, authorization = CREDENTIALS[name]
    ca_file = tmp_path / "ca.crt"
    pki.ca.cert_pem.write_to_path(str(ca_file))
    cluster = (
        {"certificate-authority-data": b64(pki.ca.cert_pem.bytes())}
        if ca_as == "data"
        else {"certificate-authority": str(ca_file)}
    )
    context = pki.server_context(require_client_certificate=False)
    async with serve(context, authorization) as server:
        login = kubeconfig_login(tmp_path, monkeypatch, server.url, cluster, user)
        assert await open_api(login).server_version() == (1, 31)
    assert [call["headers"]["Authorization"] for call in server.seen] == [authorization]


async def test_a_server_the_ca_did_not_sign_is_refused(
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_api: Callable[[Login], KubeApi],
) -> None:
    stranger = trustme.CA()
    context = pki.server_context(require_client_certificate=False)
    async with serve(context) as server:
        cluster = {"certificate-authority-data": b64(stranger.cert_pem.bytes())}
        login = kubeconfig_login(tmp_path, monkeypatch, server.url, cluster, {"token": "t"})
        with pytest.raises(ApiError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await open_api(login).read_webhook_configuration("profilis")
    assert caught.value.status == 0
    assert server.seen == []


async def test_a_401_logs_in_again_once(open_api: Callable[[Login], KubeApi]) -> None:
    tokens = ["stale", "fresh", "later"]
    logins: list[str] = []

    async with serve(None, authorization="Bearer fresh") as server:

        def login() -> kopf.ConnectionInfo:
            logins.append(tokens[len(logins)])
            return kopf.ConnectionInfo(server=server.url, token=logins[-1])

        api = open_api(login)
        assert await api.server_version() == (1, 31)
        assert logins == ["stale", "fresh"]  # the rotated token was picked up
        assert await api.server_version() == (1, 31)
        assert logins == ["stale", "fresh"]  # and kept
        server.authorization = "Bearer revoked"  # no login helps now
        assert await api.server_version() is None
        assert logins == ["stale", "fresh", "later"]  # one more login, not a loop
    assert len(server.seen) == 5


WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}


def operator_calls(cluster: Cluster) -> list[Any]:
    """kmock's record of the requests made with the operator's user agent."""
    return [
        request
        for request in cluster.kmock._requests
        if request.headers.get("User-Agent", "").startswith("profilis-operator/")
    ]


@pytest.mark.parametrize("plural", sorted(WORKLOADS))
async def test_template_annotations_are_merge_patched(
    cluster: Cluster, open_api: Callable[[Login], KubeApi], plural: str
) -> None:
    body = deployment("web", "shop")
    body["kind"] = WORKLOADS[plural]
    body["spec"]["template"]["metadata"]["annotations"] = {"profilis.io/config-hash": "old"}
    await cluster.create(f"/apis/apps/v1/namespaces/shop/{plural}", body)
    api = open_api(lambda: connection_info(kopf.OperatorSettings()))
    changes = {"profilis.io/inject": "true", "profilis.io/config-hash": None}

    await api.patch_template_annotations(plural, "shop", "web", changes)

    workload = await cluster.get(f"/apis/apps/v1/namespaces/shop/{plural}/web")
    assert workload["spec"]["template"]["metadata"]["annotations"] == {"profilis.io/inject": "true"}
    (call,) = operator_calls(cluster)
    assert (call.method.value, call.url.path) == (
        "PATCH",
        f"/apis/apps/v1/namespaces/shop/{plural}/web",
    )
    assert call.headers["Content-Type"] == "application/merge-patch+json"
    assert call.headers["Authorization"] == "Bearer test-token"
    assert call.data == {"spec": {"template": {"metadata": {"annotations": changes}}}}


async def test_the_ca_bundle_is_json_patched_and_only_when_it_differs(
    cluster: Cluster, open_api: Callable[[Login], KubeApi]
) -> None:
    configuration = webhook_configuration("profilis")
    configuration["webhooks"].append({**configuration["webhooks"][0], "name": "pods2.profilis"})
    await cluster.create(WEBHOOK_CONFIGS, configuration)
    api = open_api(lambda: connection_info(kopf.OperatorSettings()))
    ca_pem = certs.generate(["profilis-webhook"]).ca_pem

    assert await certs.patch_ca_bundle(api, "profilis", ca_pem) is True
    assert await certs.patch_ca_bundle(api, "profilis", ca_pem) is False  # in sync: no write

    stored = await cluster.get(f"{WEBHOOK_CONFIGS}/profilis")
    assert [hook["clientConfig"]["caBundle"] for hook in stored["webhooks"]] == [b64(ca_pem)] * 2
    assert [hook["name"] for hook in stored["webhooks"]] == ["pods.profilis", "pods2.profilis"]
    calls = operator_calls(cluster)
    assert [(c.method.value, c.url.path) for c in calls] == [
        ("GET", f"{WEBHOOK_CONFIGS}/profilis"),
        ("PATCH", f"{WEBHOOK_CONFIGS}/profilis"),
        ("GET", f"{WEBHOOK_CONFIGS}/profilis"),
    ]
    assert calls[1].headers["Content-Type"] == "application/json-patch+json"
    assert [(op["op"], op["path"]) for op in calls[1].data] == [
        ("test", "/webhooks/0/name"),
        ("add", "/webhooks/0/clientConfig/caBundle"),
        ("test", "/webhooks/1/name"),
        ("add", "/webhooks/1/clientConfig/caBundle"),
    ]


async def test_events_are_posted_to_their_namespace(
    cluster: Cluster, open_api: Callable[[Login], KubeApi]
) -> None:
    recorder = EventRecorder(open_api(lambda: connection_info(kopf.OperatorSettings())))
    involved = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop"}
    event = EventSpec("shop", {**involved, "uid": "u-1"}, "Normal", "ProfilisEnabled", "on")
    recorder.start()
    try:
        recorder.record(event)
        recorder.record(event)  # the same again soon after: posted once
        assert await eventually(lambda: recorder.posted, lambda posted: posted >= 1) == 1
    finally:
        await recorder.stop()

    (posted,) = (await cluster.get("/api/v1/namespaces/shop/events"))["items"]
    assert posted["involvedObject"] == {**involved, "uid": "u-1"}
    assert (posted["type"], posted["reason"], posted["message"]) == (
        "Normal",
        "ProfilisEnabled",
        "on",
    )
    assert posted["source"] == {"component": "profilis-operator"}
    assert posted["metadata"]["namespace"] == "shop"
    assert posted["metadata"]["name"].startswith("web.")
    # RFC 3339 with a zone, as the API server's metav1.Time parses it.
    rfc3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")
    assert rfc3339.fullmatch(posted["firstTimestamp"]), posted["firstTimestamp"]
    (call,) = operator_calls(cluster)
    assert (call.method.value, call.url.path) == ("POST", "/api/v1/namespaces/shop/events")
    assert call.headers["Content-Type"] == "application/json"


async def test_the_server_version_is_read(
    cluster: Cluster, open_api: Callable[[Login], KubeApi]
) -> None:
    api = open_api(lambda: connection_info(kopf.OperatorSettings()))
    assert await api.server_version() == (1, 26)  # what kmock says it is


@pytest.mark.parametrize("case", ["no kubeconfig", "missing file", "key not base64"])
async def test_unusable_credentials_are_an_api_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_api: Callable[[Login], KubeApi],
    case: str,
) -> None:
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill_root))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    monkeypatch.delenv("KUBECONFIG", raising=False)
    login: Login = functools.partial(kopf.login_with_kubeconfig, settings=kopf.OperatorSettings())
    if case == "missing file":
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    elif case == "key not base64":
        user = {
            "client-certificate-data": b64(b"-----BEGIN CERTIFICATE-----"),
            "client-key-data": "not base64",
        }
        login = kubeconfig_login(tmp_path, monkeypatch, "https://127.0.0.1:1", {}, user)
    with pytest.raises(ApiError) as caught:
        await open_api(login).read_webhook_configuration("profilis")
    assert caught.value.status == 0
    assert list(spill_root.iterdir()) == []  # no key material left behind


async def test_the_event_recorder_outlives_failed_posts_and_drops_when_full(
    cluster: Cluster, open_api: Callable[[Login], KubeApi]
) -> None:
    logins = 0

    def login() -> kopf.ConnectionInfo | None:
        nonlocal logins
        logins += 1
        return None if logins == 1 else connection_info(kopf.OperatorSettings())

    recorder = EventRecorder(open_api(login), queue_size=2)
    involved = {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop"}
    for message in ("lost", "posted", "dropped"):
        recorder.record(EventSpec("shop", involved, "Warning", "ProfilisSkipped", message))
    assert recorder.dropped == 1  # the queue held two
    recorder.start()
    try:
        assert await eventually(lambda: recorder.posted, lambda posted: posted >= 1) == 1
    finally:
        await recorder.stop()
    items = (await cluster.get("/api/v1/namespaces/shop/events"))["items"]
    assert [item["message"] for item in items] == ["posted"]
