"""The helm test script (files/webhook_check.py) against the operator's real webhook server.

The server is profilis_operator's own ``WebhookServer`` and ``HealthServer`` on 127.0.0.1,
serving the certificate the chart generated (mode helm). The script runs with the
environment the chart's test pod gets; the Service's DNS name is resolved to 127.0.0.1
inside this process only, so TLS is verified against the chart's CA and that name, as in the
cluster.
"""

from __future__ import annotations

import asyncio
import base64
import runpy
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from profilis_operator.admission import Admission, AdmissionState
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.health import HealthServer, OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.webhook import CertificateFiles, WebhookServer
from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import CHART, NAMESPACE
from tests.chart.manifests import one
from tests.support.processes import free_port

SCRIPT = CHART / "files" / "webhook_check.py"


class EventLoopThread:
    """An asyncio loop in a thread, for servers a synchronous test talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def operator_servers(render: Render, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The operator's webhook and health servers with the chart's certificate."""
    manifests = render(None, KUBE_VERSIONS[-1])
    secret = one(manifests, "Secret")
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    metrics = OperatorMetrics()
    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(),
        excluded_namespaces=frozenset({"kube-system", NAMESPACE}),
        ready=True,
    )
    webhook_port, health_port = free_port(), free_port()
    webhook = WebhookServer(
        Admission(state),
        CertificateFiles(tmp_path / "tls.crt", tmp_path / "tls.key"),
        metrics,
        host="127.0.0.1",
        port=webhook_port,
    )
    health = HealthServer(metrics, lambda: True, host="127.0.0.1", port=health_port)
    loop = EventLoopThread()
    try:
        loop.run(webhook.start())
        loop.run(health.start())
        yield {
            "manifests": manifests,
            "ca_file": tmp_path / "ca.crt",
            "ports": {"https": webhook_port, "http": health_port},
            "metrics": metrics,
        }
    finally:
        loop.run(webhook.stop())
        loop.run(health.stop())
        loop.close()


def helm_test_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    (pod,) = [m for m in manifests if m["kind"] == "Pod"]
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == SCRIPT.read_text(), "the pod runs this very file"
    return {item["name"]: item["value"] for item in container["env"]}


def route_to_localhost(
    monkeypatch: pytest.MonkeyPatch, hostname: str, ports: dict[str, int]
) -> None:
    """Resolve the Service's name to 127.0.0.1, and its ports to the test servers'."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == hostname:
            local = ports["https"] if int(port) == 443 else ports["http"]
            return real("127.0.0.1", local, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def run_check(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Callable[[], int]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    main: Callable[[], int] = runpy.run_path(str(SCRIPT))["main"]
    return main


def test_the_helm_test_passes_against_the_operators_webhook(
    operator_servers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = helm_test_env(operator_servers["manifests"])
    hostname = urlsplit(env["PROFILIS_WEBHOOK_URL"]).hostname
    assert hostname == urlsplit(env["PROFILIS_HEALTH_URL"]).hostname
    assert hostname is not None and hostname.endswith(f".{NAMESPACE}.svc")
    route_to_localhost(monkeypatch, hostname, operator_servers["ports"])
    env["PROFILIS_WEBHOOK_CA_FILE"] = str(operator_servers["ca_file"])
    assert run_check(monkeypatch, env)() == 0
    out = capsys.readouterr().out
    assert "admitted an opted-out pod unchanged (certificate verified)" in out
    assert "health" in out and "answered 200" in out
    # The operator counted the review: the helm test really reached its webhook.
    registry = operator_servers["metrics"].registry
    sample = registry.get_sample_value(
        "profilis_operator_admission_requests_total", {"result": "skipped"}
    )
    assert sample == 1


def test_the_helm_test_fails_when_the_certificate_is_not_trusted(
    operator_servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = helm_test_env(operator_servers["manifests"])
    hostname = urlsplit(env["PROFILIS_WEBHOOK_URL"]).hostname
    assert hostname is not None
    route_to_localhost(monkeypatch, hostname, operator_servers["ports"])
    # Another CA: what the API server would see after a botched certificate rotation.
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    env["PROFILIS_WEBHOOK_CA_FILE"] = str(tmp_path / "other-ca.pem")
    env["PROFILIS_TEST_TIMEOUT_SECONDS"] = "0.5"
    with pytest.raises(SystemExit, match="FAIL the webhook") as failure:
        run_check(monkeypatch, env)()
    assert "CERTIFICATE_VERIFY_FAILED" in str(failure.value)
