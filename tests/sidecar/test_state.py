"""IngestState in process: cumulative agent counters become sidecar totals exactly once.

Datagrams are built with the real encoder (``_wire``) and the clock is injected, so restarts,
sequence gaps and expiry are checked without sleeping.
"""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from profilis.exporters.prometheus import EventMetrics
from profilis_sidecar.metrics import build_registry, worker_labels
from profilis_sidecar.state import IngestState
from tests.sidecar.helpers import Families, agent_datagram

HTTP = {
    "kind": "HTTP",
    "ts_ns": 1,
    "dur_ns": 2_000_000,
    "method": "GET",
    "route": "/r",
    "status": 200,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


datagram = agent_datagram


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> IngestState:
    return IngestState(EventMetrics(invalid_events_metric=None), worker_expiry_s=30, clock=clock)


def metrics_of(state: IngestState) -> Families:
    registry = CollectorRegistry()
    registry.register(state._metrics)
    samples: Families = {}
    for family in registry.collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def test_events_are_counted_and_health_deltas_summed_over_workers(state: IngestState) -> None:
    state.ingest(datagram(pid=1, seq=1, events=[HTTP] * 3, dropped_queue=5, exported=3))
    state.ingest(datagram(pid=2, seq=1, events=[HTTP] * 2, dropped_transport=7, exported=2))
    state.ingest(datagram(pid=1, seq=2, events=[HTTP], dropped_queue=6, exported=4))

    totals = state.totals()
    assert totals.events_received == 6
    assert totals.dropped == {"queue": 6, "transport": 7, "decode": 0}
    assert totals.exported == 6
    assert totals.workers_live == 2
    assert totals.batches_lost == 0
    http = metrics_of(state)["profilis_http_requests_total"]
    assert http == [({"service": "svc", "route": "/r", "method": "GET", "status": "200"}, 6.0)]


def test_a_restarted_worker_never_makes_a_total_go_backwards(state: IngestState) -> None:
    state.ingest(datagram(pid=1, seq=5, dropped_queue=100, exported=50))
    # Same pid, sequence from 1 again: a new process (pid reuse) with small counters.
    state.ingest(datagram(pid=1, seq=1, dropped_queue=3, exported=2))

    totals = state.totals()
    assert totals.dropped["queue"] == 103
    assert totals.exported == 52
    assert totals.workers[0].restarts == 1


def test_gaps_in_the_sequence_count_lost_batches(state: IngestState) -> None:
    state.ingest(datagram(pid=1, seq=1))
    state.ingest(datagram(pid=1, seq=2))
    state.ingest(datagram(pid=1, seq=6))

    assert state.totals().batches_lost == 3
    assert state.totals().workers[0].batches_lost == 3


def test_first_sight_takes_the_whole_cumulative_count(state: IngestState) -> None:
    # An agent that ran while the sidecar was down reports its transport drops on arrival;
    # a first sequence number above 1 is not a loss (an earlier sidecar may have read those).
    state.ingest(datagram(pid=1, seq=40, dropped_transport=900, exported=1000))

    totals = state.totals()
    assert totals.dropped["transport"] == 900
    assert totals.exported == 1000
    assert totals.batches_lost == 0


def test_silent_workers_expire_and_resume_from_their_last_counters(
    state: IngestState, clock: Clock
) -> None:
    state.ingest(datagram(pid=1, seq=1, dropped_queue=10))
    state.ingest(datagram(pid=2, seq=1))
    clock.now += 20
    state.ingest(datagram(pid=2, seq=2))
    clock.now += 15  # pid 1 silent for 35 s, pid 2 for 15 s

    assert state.expire() == 1
    assert [w.pid for w in state.totals().workers] == [2]
    assert state.totals().workers_expired == 1

    state.ingest(datagram(pid=1, seq=2, dropped_queue=12))
    assert state.totals().dropped["queue"] == 12  # +2, not +12 again
    assert state.totals().workers_live == 2


def test_rejected_datagrams_are_counted_by_reason(state: IngestState) -> None:
    state.ingest(b"not json")
    state.ingest(b"x" * 70_000)
    state.ingest(orjson.dumps({"v": 1, "events": [HTTP, HTTP]}))
    state.ingest(orjson.dumps({"v": 2, "pid": "1", "events": [HTTP]}))
    state.ingest(b"[1, 2]")

    totals = state.totals()
    assert totals.rejected == {
        "oversized": 1,
        "malformed": 2,
        "version": 1,
        "types": 1,
        "workers": 0,
        "implausible": 0,
    }
    assert totals.datagrams == 5
    # Events are counted where the datagram says how many it carried.
    assert totals.dropped["decode"] == 3
    assert totals.events_received == 0


def test_invalid_events_in_a_good_envelope_are_decode_drops(state: IngestState) -> None:
    bad = [{**HTTP, "status": "200"}, {**HTTP, "dur_ns": -1}, {"kind": "NOPE", "dur_ns": 1}, 7]
    state.ingest(datagram(events=[HTTP, *bad]))

    totals = state.totals()
    assert totals.events_received == 1
    assert totals.dropped["decode"] == 4


def test_unknown_service_takes_the_sidecar_default(clock: Clock) -> None:
    state = IngestState(EventMetrics(), default_service="shop", clock=clock)
    state.ingest(datagram(service="unknown_service", events=[HTTP]))
    state.ingest(datagram(service="billing", pid=11, events=[HTTP]))

    services = {
        labels["service"] for labels, _ in metrics_of(state)["profilis_http_requests_total"]
    }
    assert services == {"shop", "billing"}


def test_workers_sharing_a_pid_get_distinct_labels(state: IngestState) -> None:
    state.ingest(datagram(service="a", pid=7))
    state.ingest(datagram(service="b", pid=7))
    state.ingest(datagram(service="a", pid=8))

    assert sorted(worker_labels(state.totals().workers)) == ["7@a", "7@b", "8"]


def test_registry_exposes_every_health_metric_of_the_design(state: IngestState) -> None:
    state.ingest(datagram(pid=3, events=[HTTP], queue_depth=4, queue_capacity=2048, exported=1))
    registry = build_registry(state, state._metrics, None)

    names = {s.name for family in registry.collect() for s in family.samples}
    assert {
        "profilis_queue_depth",
        "profilis_queue_capacity",
        "profilis_events_dropped_total",
        "profilis_events_exported_total",
        "profilis_sidecar_events_received_total",
        "profilis_sidecar_batches_lost_total",
        "profilis_sidecar_workers",
        "profilis_sidecar_rejected_datagrams_total",
        "profilis_http_requests_total",
        "profilis_http_request_duration_seconds_bucket",
    } <= names
    assert registry.get_sample_value("profilis_queue_depth", {"worker": "3"}) == 4
    assert registry.get_sample_value("profilis_queue_capacity", {"worker": "3"}) == 2048
