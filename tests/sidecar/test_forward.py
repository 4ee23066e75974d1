"""Forwarding: accepted events also reach library exporters, from a bounded queue.

The sidecar runs in process here (its parts are the same as the command's), fed by a real
CollectorExporter over its Unix socket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from profilis.config import parse_collector_address
from profilis.exporters.collector import CollectorExporter
from profilis.exporters.console import ConsoleExporter
from profilis.exporters.otlp import OTLPExporter
from profilis.schema import upgrade_event
from profilis_sidecar.forward import build_forward_sink
from profilis_sidecar.settings import SidecarError, SidecarSettings
from profilis_sidecar.sidecar import Sidecar
from tests.sidecar.helpers import scrape, short_dir, value, wait_for

GOOD = {"kind": "DB", "ts_ns": 5, "dur_ns": 7, "query": "SELECT ?", "db_vendor": "sqlite"}
# Enough for the metrics (kind, duration, vendor) but not the full schema (no ts_ns).
METRICS_ONLY = {"kind": "DB", "dur_ns": 7, "query": "SELECT ?", "db_vendor": "sqlite"}


class ListSink:
    name = "list"

    def __init__(self, fail: bool = False) -> None:
        self.events: list[Mapping[str, object]] = []
        self.fail = fail

    def __call__(self, batch: list[Mapping[str, object]]) -> None:
        if self.fail:
            raise ConnectionError("exporter down")
        self.events.extend(batch)


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_dir() as path:
        yield path


def start(tmp: Path, *sinks: Any) -> Sidecar:
    settings = SidecarSettings(
        listen=(parse_collector_address(f"unix://{tmp}/c.sock"),),
        metrics_host="127.0.0.1",
        metrics_port=0,
        drain_timeout_s=2.0,
    )
    sidecar = Sidecar(settings, forward_sinks=list(sinks))
    sidecar.start()
    return sidecar


def send(tmp: Path, *batches: list[dict[str, Any]]) -> None:
    exporter = CollectorExporter(f"unix://{tmp}/c.sock", heartbeat_interval_s=0)
    try:
        for batch in batches:
            exporter(batch)
    finally:
        exporter.close()
    assert exporter.stats().dropped_transport == 0


def test_checked_events_are_forwarded_and_the_rest_counted(tmp: Path) -> None:
    sink = ListSink()
    sidecar = start(tmp, sink)
    try:
        send(tmp, [GOOD] * 5, [METRICS_ONLY] * 2)
        wait_for(lambda: len(sink.events), lambda n: n >= 5, timeout=10)
        samples = scrape(sidecar.metrics_port)
    finally:
        sidecar.stop()

    assert sink.events == [upgrade_event(GOOD)] * 5
    assert sidecar.forwarder is not None and sidecar.forwarder.invalid_events == 2
    assert value(samples, "profilis_db_queries_total") == 7  # the metrics took all seven
    assert value(samples, "profilis_sidecar_forward_invalid_events_total") == 2
    assert value(samples, "profilis_sidecar_forward_queue_capacity") == 65_536
    assert value(samples, "profilis_sidecar_forward_events_exported_total") == 5
    assert value(samples, "profilis_export_errors_total", exporter="list") == 0


def test_a_failing_exporter_is_counted_and_makes_the_sidecar_unready(tmp: Path) -> None:
    sidecar = start(tmp, ListSink(fail=True))
    try:
        send(tmp, [GOOD] * 3)
        samples = wait_for(
            lambda: scrape(sidecar.metrics_port),
            lambda s: value(s, "profilis_export_errors_total", exporter="list") >= 1,
            timeout=10,
        )
        problems = sidecar.readiness()
    finally:
        sidecar.stop(0.5)

    assert value(samples, "profilis_sidecar_events_received_total") == 3  # ingest unharmed
    assert problems == ["a forwarding exporter is failing: list"]


def test_jsonl_forwarding_writes_every_event_by_shutdown(tmp: Path) -> None:
    out = tmp / "jsonl"
    sidecar = start(tmp, build_forward_sink(f"jsonl:{out}", service="shop"))
    try:
        send(tmp, [GOOD] * 300)
        wait_for(lambda: sidecar.state.totals().events_received, lambda n: n >= 300, timeout=10)
    finally:
        sidecar.stop()  # drains the forward queue and closes (finalizes) the exporter

    lines = [
        json.loads(line) for path in sorted(out.iterdir()) for line in path.read_text().splitlines()
    ]
    events = [line for line in lines if line.get("kind") == "DB"]
    assert len(events) == 300
    assert all(upgrade_event(e) == upgrade_event(GOOD) for e in events)


def test_forward_specs() -> None:
    assert isinstance(build_forward_sink("otlp:http://127.0.0.1:4318", service="s"), OTLPExporter)
    assert isinstance(build_forward_sink("console:json", service="s"), ConsoleExporter)
    for bad in ("kafka:x", "jsonl", "otlp:", "otlp:ftp://x"):
        with pytest.raises(SidecarError):
            build_forward_sink(bad, service="s")
