"""Operator rows: the webhook's round trip at 20 concurrent HTTPS requests (target p99 <= 5 ms).

The real ``WebhookServer`` and ``Admission`` run in their own process (as in a cluster: the
client, standing in for the API server, must not share its GIL); the client keeps 20
requests in flight over keep-alive TLS connections, with a trustme CA. Two request mixes:
a rollout (the same pod template each time, as a ReplicaSet sends it) and pods that all
differ (every patch computed afresh). The headline value is the rollout's p99.

The peer row runs the same injection behind kopf's ``@kopf.on.mutate`` (``bench.kopf_webhook``):
the measured reason the operator serves ``/mutate-pods`` itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.registry import CaseResult, Settings

__all__ = ["kopf_webhook_latency", "webhook_latency"]

CONCURRENCY = 20
_SERVER = """
import asyncio, sys
from pathlib import Path
from profilis_operator.admission import Admission, AdmissionState
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.health import OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.webhook import CertificateFiles, WebhookServer

async def main():
    state = AdmissionState(InjectionConfig(), ClusterCapabilities(True), frozenset(), ready=True)
    server = WebhookServer(Admission(state), CertificateFiles(Path(sys.argv[2]), Path(sys.argv[3])),
                           OperatorMetrics(), host="127.0.0.1", port=int(sys.argv[1]))
    await server.start()
    await asyncio.Event().wait()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def _pod(index: int | None) -> dict[str, Any]:
    name = "shop" if index is None else f"shop{index}"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "metadata": {
                    "generateName": f"{name}-7c9f8d6b54-",
                    "annotations": {"profilis.io/inject": "true"},
                    "labels": {"app.kubernetes.io/name": name},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/shop:1.4.2",
                            "env": [{"name": "APP_ENV", "value": "production"}],
                        }
                    ]
                },
            },
        },
    }


async def _measure(port: int, ca_file: str, rounds: int, distinct: bool) -> list[float]:
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=ca_file)
    url = f"https://127.0.0.1:{port}/mutate-pods"
    latencies: list[float] = []
    counter = iter(range(10**9))
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=CONCURRENCY)
    ) as session:
        for _ in range(300):  # until the server listens (kopf needs a few seconds)
            try:
                async with session.post(url, data=json.dumps(_pod(None))) as response:
                    await response.read()
                break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)

        async def one(record: bool) -> None:
            body = json.dumps(_pod(next(counter) if distinct else None)).encode()
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                answer = await response.json()
            if record:
                latencies.append(time.perf_counter() - started)
            assert answer["response"]["allowed"] is True and "patch" in answer["response"]

        for round_ in range(rounds + 20):  # 20 warm-up rounds: connections, caches
            await asyncio.gather(*(one(round_ >= 20) for _ in range(CONCURRENCY)))
    return latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def webhook_latency(settings: Settings) -> CaseResult:
    return _latency(settings, ["-c", _SERVER])


def kopf_webhook_latency(settings: Settings) -> CaseResult:
    return _latency(settings, ["-m", "bench.kopf_webhook"])


def _latency(settings: Settings, server_args: list[str]) -> CaseResult:
    """Start the server (``python SERVER_ARGS PORT CERT KEY``) and measure both mixes."""
    import socket

    import trustme

    rounds = 40 if settings.quick else 250
    with tempfile.TemporaryDirectory(prefix="pfo-") as tmp:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        cert, key, ca_file = (os.path.join(tmp, n) for n in ("tls.crt", "tls.key", "ca.pem"))
        issued.cert_chain_pems[0].write_to_path(cert)
        issued.private_key_pem.write_to_path(key)
        ca.cert_pem.write_to_path(ca_file)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, *server_args, str(port), cert, key],
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            rollout = asyncio.run(_measure(port, ca_file, rounds, distinct=False))
            distinct = asyncio.run(_measure(port, ca_file, max(10, rounds // 5), distinct=True))
        finally:
            server.terminate()
            server.wait(10)
    p99 = _percentile(rollout, 0.99)
    info = {
        "concurrency": CONCURRENCY,
        "requests": len(rollout),
        "rollout_ms": {
            q: round(_percentile(rollout, v) * 1e3, 3) for q, v in (("p50", 0.5), ("p99", 0.99))
        },
        "distinct_pods_ms": {
            q: round(_percentile(distinct, v) * 1e3, 3) for q, v in (("p50", 0.5), ("p99", 0.99))
        },
    }
    return CaseResult(p99 * 1e9, "ns/op", [p99 * 1e9], info)
