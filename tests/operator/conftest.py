"""Fixtures of the operator tests: certificates (trustme), kmock as the API server (reached
through a real kubeconfig), and the operator itself under ``kopf.testing.KopfRunner``.

kmock serves from the test's event loop while the operator runs in KopfRunner's thread, so
tests that run the operator are async and never block their loop (await, don't sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kopf
import pytest
import trustme
import yaml
from kmock._internal import parsing as kmock_parsing
from kopf.testing import KopfRunner

from tests.operator.pods import pod, review
from tests.support.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "charts" / "profilis" / "crds" / "profilisconfig.yaml"
ENTRY = Path(__file__).with_name("kopf_entry.py")
T = TypeVar("T")


@pytest.fixture(autouse=True)
def fresh_kopf_registry() -> Iterator[None]:
    """Handlers registered by one test must not leak into the next."""
    kopf.set_default_registry(kopf.OperatorRegistry())
    yield
    kopf.set_default_registry(kopf.OperatorRegistry())


@dataclass
class Certificates:
    ca: trustme.CA
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))
    return Certificates(ca, cert_file, key_file)


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def _route_namespaces(parse_path: Callable[[str], Any]) -> Callable[[str], Any]:
    """kmock 0.8 reads /api/v1/namespaces[/NAME] as a namespace scope with no resource, so
    the Namespace resource itself cannot be listed or fetched. The API server routes them as
    the cluster-scoped resource "namespaces": so does this wrapper."""

    def parse(path: str) -> Any:
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            name = parts[3] if len(parts) == 4 else None
            return kmock_parsing.ParsedPath("", "v1", "namespaces", None, name, None)
        return parse_path(path)

    return parse


@pytest.fixture
def kube(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """kmock with the built-in resources and ProfilisConfig, and KUBECONFIG pointing at it."""
    monkeypatch.setattr(kmock_parsing, "parse_path", _route_namespaces(kmock_parsing.parse_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kmock's importlib.resources use
        kmock.resources.load_bundled()
    definition = crd()
    names = definition["spec"]["names"]
    version = definition["spec"]["versions"][0]
    key = f"{definition['spec']['group']}/{version['name']}/{names['plural']}"
    # The API server answers /version and /version/; kmock 0.8 only the first, and the
    # official client (the operator's) asks for the second.
    kmock.fallback["get /version/"] << kmock._serve_server_version
    kmock.resources[key] = kmock.ResourceInfo(
        namespaced=True,
        kind=names["kind"],
        singular=names["singular"],
        verbs={"list", "watch", "get", "patch", "create", "delete", "update"},
        # As the CRD declares: kopf then writes the status through /status, as in a cluster.
        subresources=set(version.get("subresources", {})),
    )
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return kmock


@dataclass
class RunningOperator:
    runner: KopfRunner
    webhook_port: int
    health_port: int


@contextlib.contextmanager
def operator(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates | None, *extra: str
) -> Iterator[RunningOperator]:
    """The operator (real handlers, real CLI parsing) under KopfRunner."""
    webhook_port, health_port = free_port(), free_port()
    args = [
        *("--webhook-host", "127.0.0.1", "--webhook-port", str(webhook_port)),
        *("--health-host", "127.0.0.1", "--health-port", str(health_port)),
        *("--namespace", "profilis-system", "--status-interval", "0.5"),
    ]
    if certificates is not None:
        args += ["--tls-cert-file", str(certificates.cert_file)]
        args += ["--tls-key-file", str(certificates.key_file)]
    args += extra
    monkeypatch.setenv("PROFILIS_TEST_OPERATOR_ARGS", json.dumps(args))
    command = ["run", "-A", "--standalone", "--verbose", str(ENTRY)]
    with KopfRunner(command, registry=kopf.OperatorRegistry(), timeout=30) as runner:
        yield RunningOperator(runner, webhook_port, health_port)


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Await ``probe`` until ``done(result)``; return the last result (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if done(result) or time.monotonic() > deadline:  # type: ignore[arg-type]
            return result  # type: ignore[return-value]
        await asyncio.sleep(interval)


async def wait_ready(port: int) -> None:
    """Until the operator's /readyz answers 200: its indices are filled, the webhook injects."""

    async def probe() -> int:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as response,
            ):
                return response.status
        except aiohttp.ClientError:
            return 0  # not listening yet

    assert await eventually(probe, lambda status: status == 200) == 200


@contextlib.asynccontextmanager
async def https_client(certificates: Certificates) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=certificates.client_context(), limit=20)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


class Cluster:
    """Writes to kmock through its HTTP API, as kubectl would: watchers see every change."""

    def __init__(self, kmock: Any) -> None:
        self.kmock = kmock
        self.base = str(kmock.url).rstrip("/")

    async def call(self, method: str, path: str, body: object = None, **headers: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, self.base + path, json=body, headers=headers or None
            ) as response,
        ):
            text = await response.text()
            assert response.status < 300, f"{method} {path}: {response.status} {text}"
            return json.loads(text) if text else None

    async def create(self, path: str, body: dict[str, Any]) -> Any:
        return await self.call("POST", path, _with_uid(body))

    async def get(self, path: str) -> Any:
        return await self.call("GET", path)

    async def merge(self, path: str, body: dict[str, Any]) -> Any:
        return await self.call(
            "PATCH", path, body, **{"Content-Type": "application/merge-patch+json"}
        )

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Add a namespace before the operator starts (kmock 0.8 cannot parse a POST to
        /api/v1/namespaces, so it goes straight into its store; kopf lists it at start-up)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            body["metadata"]["labels"] = labels
        self.kmock.objects["v1/namespaces", None, name] = _with_uid(body)


def _with_uid(body: dict[str, Any]) -> dict[str, Any]:
    """A real API server gives every object a uid; kmock 0.8 does not. kopf keys its
    per-object memory (timers, daemons) by uid alone, so objects without one share a memory:
    a Deployment's event then stops a ProfilisConfig's status timer."""
    metadata = body.setdefault("metadata", {})
    metadata.setdefault("uid", str(uuid.uuid4()))
    return body


@pytest.fixture
def cluster(kube: Any) -> Cluster:
    return Cluster(kube)


async def admit(port: int, ca_pem: bytes, server_hostname: str) -> Any:
    """POST a pod review as the API server would: trusting only ``ca_pem``."""
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"https://127.0.0.1:{port}/mutate-pods",
            json=review(pod()),
            ssl=context,
            server_hostname=server_hostname,
        ) as response,
    ):
        assert response.status == 200
        return await response.json()
