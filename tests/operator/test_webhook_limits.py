"""What a client of the webhook port can hold or cause, attacked over real sockets on 127.0.0.1.

Idle and half-open connections against the webhook as its own process (its descriptors and
memory read from /proc), reviews too large to process, many large distinct pods, hostile
reviews that would make the operator post Events (to kmock), names no API server sends, and
a certificate rotated in the wrong order. Each reproduces a finding of issue 16.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import kopf
import pytest
import pytest_asyncio
import trustme

from profilis_operator.admission import Admission, AdmissionState, EventSpec
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.events import EventRecorder
from profilis_operator.health import OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.kubeapi import KubeApi, connection_info
from profilis_operator.webhook import CertificateFiles, WebhookServer
from tests.operator import pods
from tests.operator.conftest import Certificates, Cluster, eventually
from tests.support.processes import RunningProcess, free_port, run_process

pytestmark = pytest.mark.asyncio

REPO_ROOT = Path(__file__).resolve().parents[2]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def webhook_process(certificates: Certificates, *extra: str) -> Iterator[RunningProcess]:
    """The webhook with the operator's defaults as its own process; ``extra["health"]`` is
    the port of its /metrics."""
    port, health = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "tests.operator.webhook_process",
        *("--port", str(port), "--health-port", str(health)),
        *("--cert", str(certificates.cert_file), "--key", str(certificates.key_file)),
        *extra,
    ]
    with run_process(argv, cwd=REPO_ROOT, port=port) as running:
        running.extra["health"] = health
        yield running


async def metric(port: int, line_start: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


async def post_review(
    certificates: Certificates, port: int, body: bytes, timeout: float = 20.0
) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(ssl=certificates.client_context())
    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as session,
        session.post(
            f"https://127.0.0.1:{port}/mutate-pods",
            data=io.BytesIO(body),  # aiohttp warns of large bytes bodies
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json()


def large_pod(index: int, size: int) -> dict[str, Any]:
    """An opted-in pod of about ``size`` bytes: its app container has many variables."""
    pod = pods.pod()
    pod["metadata"]["generateName"] = f"large-{index}-"
    pod["spec"]["containers"][0]["env"] = [
        {"name": f"SETTING_{index}_{n}", "value": "x" * 80} for n in range(size // 100)
    ]
    return pod


async def test_idle_connections_are_capped_and_closed(certificates: Certificates) -> None:
    """1,000 connections that never start TLS: the server holds at most its cap, closes
    every one within the handshake timeout, stays small, and then serves a review."""
    refused = 'profilis_operator_webhook_connections_refused_total{{reason="{}"}}'
    with webhook_process(certificates) as server:
        await asyncio.sleep(0.2)
        rss_before = rss_mb(server.pid)
        health = cast(int, server.extra["health"])
        limit_before = await metric(health, refused.format("limit"))
        handshake_before = await metric(health, refused.format("handshake"))
        idle: list[socket.socket] = []
        try:
            for _ in range(1000):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))

            peak_fds, peak_rss = 0, 0.0

            def sample_and_count_closed() -> int:
                nonlocal peak_fds, peak_rss
                peak_fds = max(peak_fds, open_fds(server.pid))
                peak_rss = max(peak_rss, rss_mb(server.pid))
                closed = 0
                for sock in idle:
                    sock.setblocking(False)
                    try:
                        closed += sock.recv(1) == b""
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed += 1
                return closed

            closed = await eventually(
                sample_and_count_closed, lambda n: n == len(idle), timeout=15, interval=0.1
            )
            assert closed == len(idle), f"{closed} of {len(idle)} idle connections closed in 15 s"
            # The cap (128) plus the process's own descriptors, not one per connection.
            assert peak_fds < 128 + 40, peak_fds
            # TLS buffers for the capped few, not ~250 kB for each of the 1,000.
            assert peak_rss - rss_before < 80, (rss_before, peak_rss)
        finally:
            for sock in idle:
                sock.close()
        status, answer = await post_review(
            certificates, server.port, json.dumps(pods.review(pods.pod())).encode()
        )
        assert status == 200 and "patch" in answer["response"]
        # Each idle connection was either refused at the cap or accepted (at most the cap at
        # a time) and closed when its handshake timed out. How many took which way depends on
        # how fast the 1,000 arrived: on a loaded machine, slots freed by timed-out ones
        # take later arrivals, so only the sum is fixed.
        by_limit = await metric(health, refused.format("limit")) - limit_before
        by_handshake = await metric(health, refused.format("handshake")) - handshake_before
        assert by_limit + by_handshake == len(idle), (by_limit, by_handshake)
        assert by_limit >= 1  # the cap was reached


@pytest_asyncio.fixture
async def small_webhook(certificates: Certificates) -> AsyncIterator[tuple[int, OperatorMetrics]]:
    """The webhook in the test's loop with small limits: 4 connections, 1 s timeouts,
    reviews up to 64 KiB."""
    from profilis_operator.webhook import WebhookLimits  # here: the file also runs on old trees

    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(native_sidecars=True),
        excluded_namespaces=frozenset({"kube-system"}),
        ready=True,
    )
    metrics, port = OperatorMetrics(), free_port()
    server = WebhookServer(
        Admission(state),
        CertificateFiles(certificates.cert_file, certificates.key_file),
        metrics,
        host="127.0.0.1",
        port=port,
        limits=WebhookLimits(
            max_connections=4,
            handshake_timeout_s=1.0,
            idle_timeout_s=1.0,
            max_review_bytes=64 << 10,
        ),
    )
    await server.start()
    try:
        yield port, metrics
    finally:
        await server.stop()


async def test_connections_that_never_complete_a_request_are_closed(
    certificates: Certificates, small_webhook: tuple[int, OperatorMetrics]
) -> None:
    """After the handshake: one client silent, one trickling its headers a byte at a time;
    both closed by the idle timeout, and the cap counts established connections too."""
    port, metrics = small_webhook
    context = certificates.client_context()
    silent = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    trickling = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    held = [await asyncio.open_connection("127.0.0.1", port, ssl=context) for _ in range(2)]
    # Four open: a fifth is closed before or during its handshake.
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        extra_reader, _ = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), 5
        )
        await asyncio.wait_for(extra_reader.readexactly(1), 5)
    started = time.monotonic()
    header = b"POST /mutate-pods HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    async def trickle() -> None:
        _, writer = trickling
        with contextlib.suppress(ConnectionError, RuntimeError):
            for byte in header:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

    task = asyncio.create_task(trickle())
    try:
        for reader, _ in (silent, trickling):
            assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed by the server
        assert time.monotonic() - started < 5
    finally:
        task.cancel()
        for _, writer in (silent, trickling, *held):
            writer.close()
    refused = metrics.webhook_connections_refused.labels("limit")._value.get()
    assert refused >= 1


async def test_an_oversized_review_is_admitted_unchanged_and_counted(
    certificates: Certificates,
) -> None:
    """A 3.7 MB review (a pod of 3.3 MB of variables): answered at once with its uid, no
    patch, and counted."""
    uid = str(uuid.uuid4())
    body = json.dumps(pods.review(large_pod(0, 3_300_000), uid=uid)).encode()
    with webhook_process(certificates) as server:
        assert server.port is not None
        began = time.monotonic()
        status, answer = await post_review(certificates, server.port, body)
        # Refused on its size, not parsed and injected (which held the loop ~0.3 s before).
        assert time.monotonic() - began < 2.0
        assert status == 200
        assert answer["response"] == {"uid": uid, "allowed": True}
        oversized = await metric(
            server.extra["health"],  # type: ignore[arg-type]
            'profilis_operator_admission_requests_total{result="oversized"}',
        )
        assert oversized == 1


async def test_a_chunked_review_is_cut_off_at_the_bound(
    certificates: Certificates, small_webhook: tuple[int, OperatorMetrics]
) -> None:
    """No Content-Length to refuse it by: the body is read up to the bound, no further."""
    port, metrics = small_webhook
    uid = str(uuid.uuid4())
    body = json.dumps(pods.review(large_pod(1, 400_000), uid=uid)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    connector = aiohttp.TCPConnector(ssl=certificates.client_context())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(f"https://127.0.0.1:{port}/mutate-pods", data=chunks()) as response,
    ):
        answer = await response.json()
    assert answer["response"] == {"uid": uid, "allowed": True}
    assert metrics.admission_requests.labels("oversized")._value.get() == 1


async def test_many_large_distinct_pods_do_not_fill_the_cache(
    certificates: Certificates,
) -> None:
    """60 distinct pods of 1 MB each, all injected: the review cache keeps digests, so
    the process does not grow by the pods' size (it grew ~1.7 MB per pod before)."""
    with webhook_process(certificates) as server:
        assert server.port is not None
        await post_review(certificates, server.port, json.dumps(pods.review(pods.pod())).encode())
        rss_before = rss_mb(server.pid)
        for index in range(60):
            body = json.dumps(pods.review(large_pod(index, 1_000_000))).encode()
            status, answer = await post_review(certificates, server.port, body)
            assert status == 200 and "patch" in answer["response"]
        growth = rss_mb(server.pid) - rss_before
        assert growth < 50, f"the webhook grew by {growth:.0f} MB for 60 pods of 1 MB"


def hostile_review(index: int) -> dict[str, Any]:
    """An opted-in pod naming a ProfilisConfig that does not exist: a Warning Event each,
    about an object and with text the sender chose."""
    pod = pods.pod(annotations={"profilis.io/inject": "true", "profilis.io/config": f"x-{index}"})
    pod["metadata"]["ownerReferences"][0]["name"] = f"victim-{index % 40}"
    return pods.review(pod, namespace=f"team-{index % 5}", uid=str(uuid.uuid4()))


async def test_hostile_reviews_post_a_bounded_number_of_events(
    certificates: Certificates, cluster: Cluster
) -> None:
    """300 reviews that each ask for a different Warning Event, sent to the webhook process
    posting to kmock: a burst of at most 50 Events (was one per review), the rest counted."""
    with webhook_process(certificates, "--events") as server:
        assert server.port is not None
        connector = aiohttp.TCPConnector(ssl=certificates.client_context(), limit=20)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def send(index: int) -> None:
                url = f"https://127.0.0.1:{server.port}/mutate-pods"
                async with session.post(url, json=hostile_review(index)) as response:
                    assert response.status == 200

            await asyncio.gather(*(send(index) for index in range(300)))
        health: int = server.extra["health"]  # type: ignore[assignment]
        # Every review is answered: each of its Events was queued or refused by now.
        refused = await metric(health, 'profilis_operator_events_total{outcome="rate-limited"}')

        async def posted() -> int:
            total = 0
            for team in range(5):
                events = await cluster.get(f"/api/v1/namespaces/team-{team}/events")
                total += len(events["items"])
            return total

        settled = await eventually(posted, lambda n: n + refused >= 300)
        assert settled + refused == 300
        assert settled <= 50 + 5  # the burst, and a few tokens refilled meanwhile


async def test_an_event_repeated_is_one_event_with_a_count(cluster: Cluster) -> None:
    """The same Event fifteen times: one Event, its count 15 (client-go's series)."""
    from profilis_operator.events import EventLimits

    api = KubeApi(lambda: connection_info(kopf.OperatorSettings()))
    metrics = OperatorMetrics()
    recorder = EventRecorder(api, limits=EventLimits(update_interval_s=0.0), metrics=metrics)
    involved = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-7c9f8d6b54"}
    event = EventSpec(
        "shop", {**involved, "namespace": "shop"}, "Normal", "ProfilisInjected", "injected"
    )
    recorder.start()
    try:
        recorder.record(event)
        await eventually(lambda: recorder.posted, lambda n: n == 1)
        for _ in range(14):
            recorder.record(event)
            await asyncio.sleep(0.02)  # let the update go out before the next repeat

        async def counts() -> list[int]:
            items = (await cluster.get("/api/v1/namespaces/shop/events"))["items"]
            return [item.get("count", 1) for item in items]

        assert await eventually(counts, lambda found: found == [15]) == [15]
    finally:
        await recorder.stop()
        await api.close()


HOSTILE_NAMES = {
    "a path in the namespace": {"namespace": "shop/../../kube-system"},
    "an escaped path in the namespace": {"namespace": "shop%2F..%2Fkube-system"},
    "upper case namespace": {"namespace": "Shop"},
    "a namespace too long": {"namespace": "n" * 64},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
async def test_names_no_api_server_sends_are_refused_before_use(
    certificates: Certificates, case: str
) -> None:
    """A review whose namespace the API server could not have sent is answered unchanged
    and leads to no Event (it would name the API path the Event is posted to)."""
    events: list[EventSpec] = []
    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(native_sidecars=True),
        excluded_namespaces=frozenset(),
        ready=True,
    )
    port = free_port()
    server = WebhookServer(
        Admission(state),
        CertificateFiles(certificates.cert_file, certificates.key_file),
        OperatorMetrics(),
        host="127.0.0.1",
        port=port,
        record_event=events.append,
    )
    await server.start()
    try:
        review = pods.review(pods.pod(), **HOSTILE_NAMES[case])
        status, answer = await post_review(certificates, port, json.dumps(review).encode())
    finally:
        await server.stop()
    assert status == 200 and answer["response"]["allowed"] is True
    assert "patch" not in answer["response"]
    assert events == []


async def test_an_event_about_an_invalid_object_is_not_posted(cluster: Cluster) -> None:
    api = KubeApi(lambda: connection_info(kopf.OperatorSettings()))
    metrics = OperatorMetrics()
    recorder = EventRecorder(api, metrics=metrics)
    good = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-1", "namespace": "shop"}
    recorder.start()
    try:
        for involved in (
            {**good, "name": "../../secrets"},
            {**good, "kind": "Replica Set"},
            {**good, "namespace": "other"},
            good,
        ):
            recorder.record(EventSpec("shop", involved, "Warning", "ProfilisSkipped", "x"))
        await eventually(lambda: recorder.posted, lambda n: n == 1)
    finally:
        await recorder.stop()
        await api.close()
    items = (await cluster.get("/api/v1/namespaces/shop/events"))["items"]
    assert [item["involvedObject"]["name"] for item in items] == ["shop-1"]
    assert metrics.events.labels("invalid")._value.get() == 3


async def test_a_certificate_written_before_its_key_leaves_the_old_pair_serving(
    certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """Rotation mid-way (new certificate, old key): handshakes keep working with the old
    pair, the log says so; once the key arrives the new pair serves."""
    caplog.set_level(logging.INFO, "profilis.operator.webhook")
    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(native_sidecars=True),
        excluded_namespaces=frozenset(),
        ready=True,
    )
    metrics, port = OperatorMetrics(), free_port()
    server = WebhookServer(
        Admission(state),
        CertificateFiles(certificates.cert_file, certificates.key_file),
        metrics,
        host="127.0.0.1",
        port=port,
        reload_interval_s=0.05,
    )
    body = json.dumps(pods.review(pods.pod())).encode()
    await server.start()
    try:
        new_ca = trustme.CA()
        issued = new_ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(certificates.cert_file))  # the key later
        tls_errors = metrics.errors.labels("tls")
        assert await eventually(lambda: tls_errors._value.get(), lambda n: n >= 2) >= 2
        status, _ = await post_review(certificates, port, body, timeout=5)
        assert status == 200  # the old pair, whole
        assert "still serving the pair loaded before" in caplog.text

        issued.private_key_pem.write_to_path(str(certificates.key_file))
        assert await eventually(lambda: metrics.tls_reloads._value.get(), lambda n: n >= 2) >= 2
        rotated = Certificates(new_ca, certificates.cert_file, certificates.key_file)
        status, _ = await post_review(rotated, port, body, timeout=5)
        assert status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await post_review(certificates, port, body, timeout=5)
    finally:
        await server.stop()
