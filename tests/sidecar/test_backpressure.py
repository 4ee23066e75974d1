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
    # The app thread never waited on the sidecar (the bound is far below the pause).
    assert app.slowest_emit_s < 0.5
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
