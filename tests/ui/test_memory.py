"""StatsStore's memory is bounded by its caps, not by traffic: 1,000,000 events over 10,000
routes, spread over two whole windows, measured with tracemalloc."""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from profilis.core.stats import OVERFLOW, StatsStore

pytestmark = pytest.mark.slow

EVENTS = 1_000_000
ROUTES = 10_000
BATCH = 10_000
#: Default settings: 15-minute window of 60-s buckets, 200 routes.
WINDOW_S = 900.0
#: The whole store may use this much. Its size is set by the caps: ~16 slots x 201 route
#: rows x a histogram spanning the latencies seen (the load spreads them over 1 us-10 s).
BOUND_BYTES = 6_000_000


def test_a_million_events_over_ten_thousand_routes_stay_within_a_fixed_size(capsys, artifacts):
    now = [1_800_000_000.0]
    rnd = random.Random(5)
    # One event dict per route, reused batch after batch: only the store's own allocations
    # are traced. Durations differ per route and spread over seven decades.
    events = [
        {
            "kind": "HTTP",
            "ts_ns": 0,
            "dur_ns": int(10 ** rnd.uniform(3, 10)),
            "method": "GET",
            "route": f"/route/{i}",
            "status": 500 if i % 97 == 0 else 200,
            **({"error": f"Error{i % 300}"} if i % 97 == 0 else {}),
        }
        for i in range(ROUTES)
    ]
    batches = EVENTS // BATCH
    step_s = 2 * WINDOW_S / batches  # two windows: the second one only replaces the first
    sizes: dict[int, int] = {}
    gc.collect()
    tracemalloc.start()
    try:
        stats = StatsStore(window_minutes=WINDOW_S / 60, clock=lambda: now[0])
        for batch in range(batches):
            ts_ns = int(now[0] * 1e9)
            for event in events:
                event["ts_ns"] = ts_ns
            stats(events)
            now[0] += step_s
            if batch + 1 in (batches // 2, batches):
                gc.collect()
                sizes[batch + 1] = tracemalloc.get_traced_memory()[0]
        snapshot = stats.snapshot()
    finally:
        tracemalloc.stop()
    one_window, two_windows = sizes[batches // 2], sizes[batches]
    figure = (
        f"StatsStore after {EVENTS:,} events over {ROUTES:,} routes: "
        f"{two_windows / 1e6:.2f} MB traced (after one window: {one_window / 1e6:.2f} MB; "
        f"bound {BOUND_BYTES / 1e6:.1f} MB)"
    )
    with capsys.disabled():  # shown in every run's output, not only with -s
        print(f"\n{figure}")
    (artifacts / "stats-memory.txt").write_text(figure + "\n")
    assert two_windows < BOUND_BYTES
    # Bounded, not merely small: the second window did not add to the first.
    assert two_windows < one_window * 1.2
    assert snapshot["store"]["events"] == EVENTS
    assert len(snapshot["routes"]) == stats.max_routes + 1
    (overflow,) = [row for row in snapshot["routes"] if row["overflow"]]
    assert overflow["route"] == OVERFLOW
    assert len(snapshot["errors"]["recent"]) == stats.max_errors
