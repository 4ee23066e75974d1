"""A failing OTLP forwarder is visible: export errors, pending and dropped events in /metrics,
an unready /readyz, and a slow receiver holds the other exporters for one timeout at most.

Real processes on 127.0.0.1: the sidecar command with an OTLP endpoint where nothing
listens (then a real receiver on that port), and a receiver process that trickles its
answers to an in-process sidecar with a second exporter beside the OTLP one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from profilis.config import parse_collector_address
from profilis.exporters.collector import CollectorExporter
from profilis.exporters.otlp import OTLPExporter
from profilis_sidecar.settings import SidecarSettings
from profilis_sidecar.sidecar import Sidecar
from tests.exporters.otlp_receiver import Receiver
from tests.sidecar.helpers import get, running_sidecar, scrape, short_dir, status, value, wait_for
from tests.support.processes import free_port, run_process

ROOT = Path(__file__).resolve().parents[2]
TRICKLE = ROOT / "tests" / "library" / "trickle_server.py"
RULES = ROOT / "grafana" / "rules" / "profilis-alerts.yaml"


def fn_events(count: int) -> list[dict[str, Any]]:
    return [{"kind": "FN", "ts_ns": time.time_ns(), "dur_ns": 1000, "fn": "job"}] * count


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_dir() as path:
        yield path


def test_a_dead_otlp_endpoint_is_counted_pending_and_unready_until_it_answers(tmp: Path) -> None:
    otlp_port = free_port()  # nothing listens here (yet)
    with running_sidecar(tmp / "c.sock", f"--forward=otlp:http://127.0.0.1:{otlp_port}") as proc:
        agent = CollectorExporter(f"unix://{tmp}/c.sock", heartbeat_interval_s=0)
        try:
            dead_then_alive(agent, proc.port, otlp_port)
        finally:
            agent.close()


def dead_then_alive(agent: CollectorExporter, port: int, otlp_port: int) -> None:
    agent(fn_events(200))
    samples = wait_for(
        lambda: scrape(port),
        lambda s: value(s, "profilis_export_errors_total", exporter="otlp") >= 1,
        timeout=15,
    )
    readyz = get(port, "/readyz")
    forward = status(port)["forward"]

    # Before: 0 errors, the 200 events counted as exported, and a ready sidecar.
    assert value(samples, "profilis_sidecar_events_received_total") == 200
    assert value(samples, "profilis_sidecar_forward_events_exported_total") == 0
    assert value(samples, "profilis_sidecar_forward_exporter_failing", exporter="otlp") == 1
    pending = value(samples, "profilis_sidecar_forward_exporter_events_pending", exporter="otlp")
    assert pending == 200
    assert readyz[0] == 503 and b"a forwarding exporter is failing: otlp" in readyz[1]
    assert forward["exporters"][0]["errors"] >= 1 and forward["exporters"][0]["backing_off"]
    # ProfilisExportErrors reads exactly this series, and names its exporter label.
    rule = next(
        r
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == "ProfilisExportErrors"
    )
    assert "rate(profilis_export_errors_total[" in rule["expr"]
    assert "$labels.exporter" in rule["annotations"]["description"]

    # The receiver comes up: the held events go out with a later batch, and it is ready.
    receiver = Receiver(otlp_port).start()
    try:

        def probe() -> tuple[int, float]:
            agent(fn_events(1))  # the exporter retries on a batch, once its backoff is over
            exported = value(scrape(port), "profilis_sidecar_forward_events_exported_total")
            return get(port, "/readyz")[0], exported

        code, exported = wait_for(
            probe, lambda r: r[0] == 200 and r[1] >= 201, timeout=15, interval=0.25
        )
        assert code == 200 and exported >= 201
        assert len(receiver.spans) >= 201
    finally:
        receiver.stop()


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.events = 0

    def __call__(self, batch: list[Mapping[str, object]]) -> None:
        self.events += len(batch)


def test_a_trickling_otlp_receiver_holds_the_other_exporter_one_timeout_at_most(
    tmp: Path,
) -> None:
    # A receiver that answers a byte every 0.5 s (40 s an answer), an OTLP exporter with a
    # 2 s timeout, and a second exporter on the same forwarding queue (5,000 events). The
    # agent sends 1,000 events/s for 6 s. Before, the first request held the forwarding
    # writer for the whole answer: the other exporter got nothing and the queue overflowed.
    port = free_port()
    argv = [sys.executable, str(TRICKLE), str(port), "0.5", "60", "head"]
    with run_process(argv, port=port):
        other = ListSink()
        otlp = OTLPExporter(f"http://127.0.0.1:{port}", timeout_s=2.0)
        settings = SidecarSettings(
            listen=(parse_collector_address(f"unix://{tmp}/c.sock"),),
            metrics_host="127.0.0.1",
            metrics_port=0,
            forward_queue_size=5_000,
        )
        sidecar = Sidecar(settings, forward_sinks=[otlp, other])
        sidecar.start()
        agent = CollectorExporter(f"unix://{tmp}/c.sock", heartbeat_interval_s=0)
        try:
            started = time.monotonic()
            for tick in range(60):
                agent(fn_events(100))
                time.sleep(max(0.0, started + (tick + 1) * 0.1 - time.monotonic()))
            received = sidecar.state.totals().events_received
            wait_for(lambda: other.events, lambda n: n >= received, timeout=8)
            health = sidecar.forwarder.health() if sidecar.forwarder else None
            problems = sidecar.readiness()
        finally:
            agent.close()
            sidecar.stop(0.5)

    assert received >= 5_000  # the agent's sends mostly arrived
    assert other.events == received
    assert health is not None and health.dropped["queue"] == 0
    assert otlp.errors >= 2 and otlp.exported == 0
    assert problems == ["a forwarding exporter is failing: otlp"]
