"""Real sidecar, real agent processes: every event sent is counted once, exactly.

Four agents (``profilis_sidecar.loadgen``: Emitter -> AsyncCollector -> CollectorExporter,
each in its own process) send known numbers of events to the sidecar subprocess; /metrics
is scraped over HTTP and parsed with prometheus_client's parser.
"""

from __future__ import annotations

import pytest

from tests.sidecar.helpers import (
    Families,
    counters,
    run_loadgen,
    running_sidecar,
    scrape,
    short_dir,
    value,
    wait_for,
)

pytestmark = pytest.mark.slow

AGENTS = 4


def settled(port: int, expected_events: int, timeout: float = 20.0) -> Families:
    """/metrics once the sidecar has counted ``expected_events`` (events, drops included)."""

    def accounted(samples: Families) -> bool:
        counted = value(samples, "profilis_sidecar_events_received_total")
        counted += value(samples, "profilis_events_dropped_total")
        return counted >= expected_events

    return wait_for(lambda: scrape(port), accounted, timeout=timeout)


def test_under_capacity_the_totals_equal_what_was_sent() -> None:
    events = 15_000
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        summary = run_loadgen(
            f"unix://{tmp}/c.sock",
            # 40,000 events/s in all: the kernel's ten-datagram queue alone holds 35 ms of
            # it, so even a sidecar paused by a busy machine drops nothing.
            *("--agents", str(AGENTS), "--events", str(events), "--rate", "10000"),
            *("--mix", "all", "--routes", "5"),
        )
        samples = settled(sidecar.port or 0, AGENTS * events)

    total = AGENTS * events
    assert summary["emitted"] == summary["sent"] == total
    assert summary["unaccounted"] == 0
    assert value(samples, "profilis_sidecar_events_received_total") == total
    assert value(samples, "profilis_events_exported_total") == total
    by_kind = summary["by_kind"]
    assert value(samples, "profilis_http_requests_total", service="loadgen") == by_kind["HTTP"]
    assert value(samples, "profilis_function_calls_total") == by_kind["FN"]
    assert value(samples, "profilis_db_queries_total", db_vendor="sqlite") == by_kind["DB"]
    assert value(samples, "profilis_http_request_duration_seconds_count") == by_kind["HTTP"]
    # Every 10th HTTP event is a 500 (see loadgen): the status label carries it through.
    assert value(samples, "profilis_http_requests_total", status="500") > 0
    series = [labels for labels, _ in samples["profilis_http_requests_total"]]
    assert {labels["route"] for labels in series} == {f"/load/{{id}}/{n}" for n in range(5)}
    assert {labels["method"] for labels in series} == {"GET", "POST"}
    for reason in ("queue", "transport", "decode"):
        assert value(samples, "profilis_events_dropped_total", reason=reason) == 0
    assert value(samples, "profilis_sidecar_rejected_datagrams_total") == 0
    assert value(samples, "profilis_sidecar_batches_lost_total") == 0
    assert value(samples, "profilis_sidecar_workers") == AGENTS
    workers = {labels["worker"] for labels, _ in samples["profilis_queue_capacity"]}
    assert workers == {str(agent["pid"]) for agent in summary["per_agent"]}
    assert all(v == 8192 for _, v in samples["profilis_queue_capacity"])


@pytest.mark.parametrize(
    ("mode", "overflowing"),
    [
        # Flat out through the whole agent: its own queue overflows first.
        ("emitter", "queue"),
        # Flat out into the exporter alone: the sidecar's socket buffer fills and the
        # exporter waits for room (DESIGN: a busy sidecar is backpressure, not loss).
        ("exporter", None),
    ],
)
def test_under_overload_sent_equals_counted_plus_dropped_exactly(
    mode: str, overflowing: str | None
) -> None:
    events = 150_000
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        summary = run_loadgen(
            f"unix://{tmp}/c.sock",
            *("--agents", str(AGENTS), "--events", str(events), "--rate", "0"),
            *("--mode", mode, "--queue-size", "1024", "--batch-max", "128"),
        )
        samples = settled(sidecar.port or 0, AGENTS * events)
        totals = counters(sidecar.port or 0)

    total = AGENTS * events
    received = value(samples, "profilis_sidecar_events_received_total")
    dropped_queue = value(samples, "profilis_events_dropped_total", reason="queue")
    dropped_transport = value(samples, "profilis_events_dropped_total", reason="transport")
    assert summary["unaccounted"] == 0
    if overflowing:  # the overload really happened
        assert value(samples, "profilis_events_dropped_total", reason=overflowing) > 0
    else:  # nothing is lost while the sidecar is only behind
        assert received == total
    assert dropped_transport == 0  # the sidecar was there all along
    assert received + dropped_queue + dropped_transport == total
    # And each part agrees with what the agents counted themselves.
    assert received == summary["sent"]
    assert dropped_queue == summary["dropped"].get("queue", 0)
    assert dropped_transport == summary["dropped"]["transport"]
    assert value(samples, "profilis_http_requests_total") == received
    assert value(samples, "profilis_events_dropped_total", reason="decode") == 0
    assert totals["batches_lost"] == 0
    assert totals["internal_errors"] == 0
    print(
        f"\noverload ({mode}): {total} sent, {received:.0f} counted, "
        f"{dropped_queue:.0f} dropped (queue), {dropped_transport:.0f} dropped (transport) "
        f"in {summary['elapsed_s']} s"
    )
