"""A paused sidecar: the agent's queue absorbs the burst, and only its overflow is lost.

The real sidecar runs as a subprocess and is stopped with SIGSTOP for five seconds while an
app thread in this process emits through the real agent path (Emitter -> AsyncCollector ->
CollectorExporter). The collector's health is read directly; /metrics is scraped after.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.exporters.collector import CollectorExporter
from tests.sidecar.helpers import running_sidecar, scrape, short_dir, value, wait_for

pytestmark = pytest.mark.slow

PAUSE_S = 5.0
RATE = 10_000  # events/s from the app thread: 50,000 events during the pause


@dataclass
class App:
    """An app thread emitting at ``RATE`` until stopped, timing every emit call."""

    emitter: Emitter
    stop: threading.Event = field(default_factory=threading.Event)
    emitted: int = 0
    slowest_emit_s: float = 0.0

    def run(self) -> None:
        emit_http = self.emitter.emit_http
        clock = time.perf_counter
        started = clock()
        while not self.stop.is_set():
            for _ in range(100):
                before = clock()
                emit_http("/orders/{id}", 200, 1_000_000)
                took = clock() - before
                if took > self.slowest_emit_s:
                    self.slowest_emit_s = took
            self.emitted += 100
            ahead = started + self.emitted / RATE - clock()
            if ahead > 0:
                time.sleep(ahead)


@pytest.fixture
def sidecar_socket() -> Iterator[Any]:
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        yield sidecar, f"unix://{tmp}/c.sock"


@pytest.mark.parametrize("queue_size", [200_000, 4096])
def test_a_paused_sidecar_fills_the_queue_and_loses_only_its_overflow(
    sidecar_socket: Any, queue_size: int
) -> None:
    sidecar, address = sidecar_socket
    exporter = CollectorExporter(address, service="paused", heartbeat_interval_s=0.2)
    collector: AsyncCollector[Any] = AsyncCollector(
        exporter, queue_size=queue_size, batch_max=128, flush_interval=0.05
    )
    exporter.attach(collector)
    app = App(Emitter(collector))
    thread = threading.Thread(target=app.run, name="app")
    thread.start()
    try:
        time.sleep(0.5)
        depth_before = collector.health().queue_depth
        sidecar.signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        peak = 0
        while time.monotonic() - paused_at < PAUSE_S:
            peak = max(peak, collector.health().queue_depth)
            time.sleep(0.05)
        sidecar.signal(signal.SIGCONT)
        # The writer resumes within a backoff step and drains the queue.
        drained = wait_for(
            lambda: collector.health().queue_depth, lambda depth: depth < 1000, timeout=20.0
        )
    finally:
        sidecar.signal(signal.SIGCONT)
        app.stop.set()
        thread.join(10.0)
    collector.close(timeout=10.0)
    health = collector.health()
    stats = exporter.stats()

    print(
        f"\npaused {PAUSE_S} s, queue {queue_size}: peak depth {peak}, slowest emit "
        f"{app.slowest_emit_s * 1e3:.2f} ms, {app.emitted} emitted, dropped {dict(health.dropped)}"
    )
    # The queue showed the backpressure, and fell back once the sidecar resumed.
    assert depth_before < 1000
    assert peak >= min(queue_size, 0.5 * RATE * PAUSE_S)
    assert drained < 1000
    # The app thread never waited on the sidecar: the queue grew while the sidecar was
    # stopped (peak, above). The slowest emit is printed (~0.5 ms on an idle machine; one
    # CI run on a busy one saw a 1.1 s stall of the whole process), so its bound is only
    # half the pause: an emit waiting for the sidecar would sit out the rest of the pause.
    assert app.slowest_emit_s < PAUSE_S / 2
    # Nothing was lost on the way: only the queue's overflow, counted there.
    assert stats.dropped_transport == 0
    assert health.enqueued == app.emitted
    assert health.enqueued == (
        health.exported
        + health.dropped_total
        + health.filtered
        + health.queue_depth
        + health.in_flight
    )
    assert (health.queue_depth, health.in_flight) == (0, 0)
    if queue_size >= RATE * PAUSE_S * 2:
        assert health.dropped_total == 0
        assert health.exported == app.emitted
    else:
        assert health.dropped["queue"] > 0
        assert health.dropped_total == health.dropped["queue"]

    # The sidecar counts exactly what the agent sent, and the agent's own drops.
    def settled(samples: Any) -> bool:
        return bool(
            value(samples, "profilis_sidecar_events_received_total") >= stats.sent_events
            and value(samples, "profilis_events_dropped_total", reason="queue")
            >= health.dropped["queue"]
        )

    samples = wait_for(lambda: scrape(sidecar.port or 0), settled, timeout=20.0)
    assert value(samples, "profilis_sidecar_events_received_total") == stats.sent_events
    assert stats.sent_events == health.exported
    assert (
        value(samples, "profilis_events_dropped_total", reason="queue") == health.dropped["queue"]
    )
    assert value(samples, "profilis_events_dropped_total", reason="transport") == 0
    assert value(samples, "profilis_sidecar_batches_lost_total") == 0


RATE_LIMITED_EVENTS_PER_S = 2_000


def test_an_ingest_rate_limited_sidecar_fills_the_agents_queue_while_metrics_answers() -> None:
    """--ingest-rate-limit 2: at most 2 x 128 events a second get through, so the agent's
    queue fills; the sidecar keeps serving /metrics, which shows the depth rising."""
    queue_size = 4096
    with short_dir() as tmp, running_sidecar(tmp / "c.sock", "--ingest-rate-limit", "2") as sc:
        exporter = CollectorExporter(
            f"unix://{tmp}/c.sock", service="throttled", heartbeat_interval_s=0.2
        )
        collector: AsyncCollector[Any] = AsyncCollector(
            exporter, queue_size=queue_size, batch_max=128, flush_interval=0.05
        )
        exporter.attach(collector)
        emitter = Emitter(collector)
        stop = threading.Event()

        def app() -> None:
            while not stop.is_set():
                for _ in range(20):
                    emitter.emit_http("/orders/{id}", 200, 1_000_000)
                time.sleep(20 / RATE_LIMITED_EVENTS_PER_S)

        thread = threading.Thread(target=app, name="app")
        thread.start()
        depths: list[float] = []
        slowest_scrape_s = 0.0
        try:
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline:
                before = time.monotonic()
                samples = scrape(sc.port or 0)
                slowest_scrape_s = max(slowest_scrape_s, time.monotonic() - before)
                depth = value(samples, "profilis_queue_depth")
                capacity = value(samples, "profilis_queue_capacity")
                depths.append(depth)
                if capacity and depth / capacity > 0.9:
                    break
                time.sleep(0.25)
            health = collector.health()
            dropped_transport = exporter.stats().dropped_transport
        finally:
            stop.set()
            thread.join(10.0)
            # What is still held when close gives up is counted as dropped_transport.
            collector.close(timeout=2.0)
        print(
            f"\nrate-limited sidecar: /metrics depth went {depths[0]:.0f} -> {depths[-1]:.0f} "
            f"of {queue_size} in {len(depths)} scrapes, slowest scrape {slowest_scrape_s:.2f} s"
        )
        # The sidecar reported the agent's queue filling, on a /metrics that kept answering.
        assert value(samples, "profilis_queue_capacity") == queue_size
        assert depths[-1] > 0.9 * queue_size, depths
        assert slowest_scrape_s < 5.0
        assert health.queue_depth > 0.9 * queue_size
        # A throttled sidecar is backpressure, not an absent one: nothing lost in transport.
        assert dropped_transport == 0
