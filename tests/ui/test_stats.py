"""StatsStore: what metrics.json reports, as the window moves. Time is an injected clock."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from profilis import AsyncCollector, ConfigError
from profilis.core.stats import OVERFLOW, StatsStore

T0 = 1_800_000_000.0  # seconds since the epoch, on a bucket boundary


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def http(clock: Clock, route: str = "/a", status: int = 200, ms: float = 5.0, **extra: Any):
    dur_ns = int(ms * 1e6)
    event = {
        "kind": "HTTP",
        "ts_ns": int(clock.now * 1e9) - dur_ns,
        "dur_ns": dur_ns,
        "method": "GET",
        "route": route,
        "status": status,
    }
    return event | extra


def fn(clock: Clock, name: str, ms: float = 1.0, **extra: Any) -> dict[str, Any]:
    dur_ns = int(ms * 1e6)
    return {
        "kind": "FN",
        "ts_ns": int(clock.now * 1e9) - dur_ns,
        "dur_ns": dur_ns,
        "fn": name,
    } | extra


def db(clock: Clock, query: str, vendor: str = "sqlite", ms: float = 1.0, **extra: Any):
    dur_ns = int(ms * 1e6)
    event = {"kind": "DB", "ts_ns": int(clock.now * 1e9) - dur_ns, "dur_ns": dur_ns}
    return event | {"query": query, "db_vendor": vendor} | extra


def routes(snapshot: dict[str, Any]) -> dict[str, int]:
    return {row["route"]: row["count"] for row in snapshot["routes"]}


def test_routes_are_counted_with_errors_statuses_and_percentiles(clock):
    stats = StatsStore(clock=clock)
    stats([http(clock, "/a", ms=float(i)) for i in range(1, 101)])
    stats([http(clock, "/b", status=500), http(clock, "/b", status=503, error="TimeoutError")])
    stats([http(clock, "/b", status=404), http(clock, "/b", status=302)])
    snap = stats.snapshot()
    a, b = snap["routes"]
    assert (a["route"], a["count"], a["errors"], a["error_rate"]) == ("/a", 100, 0, 0.0)
    assert a["p50_ms"] == pytest.approx(50, rel=0.044)
    assert a["p99_ms"] == pytest.approx(99, rel=0.044)
    assert (a["max_ms"], a["mean_ms"]) == (100.0, 50.5)
    # A 5xx is a failure with or without an exception; a 4xx is the client's.
    assert (b["count"], b["errors"], b["error_rate"]) == (4, 2, 0.5)
    assert b["statuses"] == {"1xx": 0, "2xx": 0, "3xx": 1, "4xx": 1, "5xx": 2}
    assert snap["totals"]["http"]["count"] == 104
    assert snap["totals"]["http"]["errors"] == 2
    json.dumps(snap, allow_nan=False)  # what the dashboard serves, as is


def test_the_window_forgets_old_slots_and_keeps_recent_ones(clock):
    stats = StatsStore(window_minutes=2, bucket_seconds=30, series_seconds=10, clock=clock)
    stats([http(clock, "/old")])
    clock.advance(90)
    stats([http(clock, "/new")])
    assert routes(stats.snapshot()) == {"/old": 1, "/new": 1}
    clock.advance(60)  # /old is now 150 s old: past the 2-minute window and its bucket
    assert routes(stats.snapshot()) == {"/new": 1}
    clock.advance(120)
    snap = stats.snapshot()
    assert snap["routes"] == []
    assert snap["totals"]["http"]["count"] == 0
    assert snap["totals"]["http"]["p50_ms"] is None


def test_rates_are_over_the_time_covered(clock):
    stats = StatsStore(clock=clock)
    clock.advance(10)
    stats([http(clock) for _ in range(50)])
    snap = stats.snapshot()
    assert snap["window"]["covered_seconds"] == 10
    assert snap["totals"]["http"]["rate_per_s"] == 5.0


def test_the_series_has_one_point_per_step_with_gaps_as_zeros(clock):
    stats = StatsStore(window_minutes=1, bucket_seconds=10, series_seconds=5, clock=clock)
    stats([http(clock, ms=2.0), http(clock, ms=4.0, status=500)])
    clock.advance(11)
    stats([http(clock, ms=8.0)])
    clock.advance(1)
    points = stats.snapshot()["series"]["points"]
    assert [p["t"] - T0 for p in points] == [0, 5, 10]
    assert [(p["requests"], p["errors"]) for p in points] == [(2, 1), (0, 0), (1, 0)]
    assert points[0]["rate_per_s"] == 0.4
    assert points[1]["p50_ms"] is None
    assert points[2]["p99_ms"] == 8.0


def test_past_the_route_cap_new_routes_share_one_overflow_row(clock):
    stats = StatsStore(window_minutes=1, bucket_seconds=10, max_routes=3, clock=clock)
    stats([http(clock, f"/r{i}") for i in range(10)])
    snap = stats.snapshot()
    assert routes(snap) == {"/r0": 1, "/r1": 1, "/r2": 1, OVERFLOW: 7}
    overflow = next(row for row in snap["routes"] if row["overflow"])
    assert overflow["method"] == "*"
    assert snap["store"]["overflowed"]["routes"] == 7
    assert snap["totals"]["http"]["count"] == 10  # nothing is lost, only grouped
    # Once the old routes leave the window, new ones get rows of their own again.
    clock.advance(80)
    stats([http(clock, "/later")])
    assert routes(stats.snapshot()) == {"/later": 1}


def test_functions_db_vendors_and_queries_are_summarised(clock):
    stats = StatsStore(clock=clock)
    stats([fn(clock, "svc.load", ms=2.0) for _ in range(3)] + [fn(clock, "svc.save", ms=10.0)])
    stats([fn(clock, "svc.save", ms=1.0, error="KeyError")])
    stats([db(clock, "SELECT 1", ms=1.0), db(clock, "SELECT 1", ms=3.0)])
    stats([db(clock, "UPDATE t SET a = ?", vendor="postgresql", ms=20.0, error="OperationalError")])
    stats([{"kind": "DB", "ts_ns": int(clock.now * 1e9), "dur_ns": 1000, "query": "SELECT 2"}])
    snap = stats.snapshot()
    assert [(f["fn"], f["count"], f["errors"]) for f in snap["functions"]] == [
        ("svc.save", 2, 1),  # by total time
        ("svc.load", 3, 0),
    ]
    vendors = {v["db_vendor"]: (v["count"], v["errors"]) for v in snap["db"]["vendors"]}
    assert vendors == {"sqlite": (2, 0), "postgresql": (1, 1), "unknown": (1, 0)}
    queries = [(q["db_vendor"], q["query"], q["count"]) for q in snap["db"]["queries"]]
    assert queries[0] == ("postgresql", "UPDATE t SET a = ?", 1)
    assert ("sqlite", "SELECT 1", 2) in queries
    assert snap["totals"]["functions"]["count"] == 5
    assert snap["totals"]["db"]["count"] == 4


def test_recent_errors_are_bounded_newest_first_with_exception_types(clock):
    stats = StatsStore(max_errors=3, clock=clock)
    for i in range(5):
        clock.advance(1)
        stats([http(clock, "/boom", status=500, error=f"Error{i}", trace_id="a" * 32)])
    stats([fn(clock, "svc.job", error="ValueError"), http(clock, "/x", status=502)])
    snap = stats.snapshot()
    recent = snap["errors"]["recent"]
    assert [(e["kind"], e["name"], e["error"]) for e in recent] == [
        ("HTTP", "GET /x", "HTTP 502"),
        ("FN", "svc.job", "ValueError"),
        ("HTTP", "GET /boom", "Error4"),
    ]
    assert recent[2]["trace_id"] == "a" * 32
    assert recent[2]["status"] == 500
    by_type = {e["error"]: e["count"] for e in snap["errors"]["by_type"]}
    assert by_type == {f"Error{i}": 1 for i in range(5)} | {"ValueError": 1, "HTTP 502": 1}


def test_bad_events_are_counted_and_skipped_never_raised(clock):
    stats = StatsStore(clock=clock)
    ts = int(clock.now * 1e9)
    stats(
        [
            {"kind": "HTTP"},
            {"kind": "NOPE", "dur_ns": 1, "ts_ns": ts},
            {"kind": "HTTP", "ts_ns": ts, "dur_ns": -5, "route": "/a", "status": 200},
            {"kind": "HTTP", "ts_ns": ts, "dur_ns": 5, "route": None, "status": 200},
            {"kind": "FN", "ts_ns": ts, "dur_ns": "5", "fn": "f"},
            http(clock, "/ok"),
        ]
    )
    snap = stats.snapshot()
    assert routes(snap) == {"/ok": 1}
    assert (snap["store"]["events"], snap["store"]["ignored"]) == (1, 5)


def test_events_too_old_are_late_and_events_from_the_future_count_as_now(clock):
    stats = StatsStore(window_minutes=1, bucket_seconds=10, clock=clock)
    clock.advance(600)
    old = http(clock, "/old")
    old["ts_ns"] -= 300 * 10**9
    ahead = http(clock, "/ahead")
    ahead["ts_ns"] += 30 * 10**9
    stats([old, ahead])
    snap = stats.snapshot()
    assert routes(snap) == {"/ahead": 1}
    assert snap["store"]["late"] == 1
    assert snap["series"]["points"][-1]["requests"] == 1


def test_long_names_are_cut_so_a_key_stays_small(clock):
    stats = StatsStore(clock=clock)
    stats([http(clock, "/" + "x" * 100_000), db(clock, "SELECT " + "y" * 100_000)])
    snap = stats.snapshot()
    assert len(snap["routes"][0]["route"]) == 512
    assert len(snap["db"]["queries"][0]["query"]) == 2048


def test_collector_health_comes_from_the_attached_collector(clock):
    stats = StatsStore(clock=clock)
    assert stats.snapshot()["collector"] is None
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(stats, flush_interval=0.01)
    try:
        stats.attach(collector)
        for _ in range(10):
            collector.enqueue(http(clock))
        assert collector.flush(5.0)
        health = stats.snapshot()["collector"]
    finally:
        collector.close(5.0)
    assert (health["enqueued"], health["exported"], health["dropped_total"]) == (10, 10, 0)
    assert health["dropped"] == {"queue": 0, "processor": 0, "export": 0}
    assert health["sinks"][0]["name"] == "StatsStore"
    assert routes(stats.snapshot()) == {"/a": 10}


def test_a_mapping_health_source_is_passed_through_and_a_failing_one_is_contained(clock):
    stats = StatsStore(clock=clock, collector=lambda: {"queue_depth": 3, "workers": 2})
    assert stats.snapshot()["collector"] == {"queue_depth": 3, "workers": 2}

    def broken() -> dict[str, int]:
        raise OSError("gone")

    stats.attach(broken)
    assert stats.snapshot()["collector"] == {"error": "collector health unavailable"}
    with pytest.raises(TypeError):
        stats.attach(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"window_minutes": 0}, "window_minutes"),
        ({"max_errors": -1}, "max_errors"),
        ({"max_routes": 0}, "max_routes"),
        ({"bucket_seconds": 0.5}, "bucket_seconds"),
        ({"window_minutes": 1, "bucket_seconds": 120}, "bucket_seconds"),
        ({"bucket_seconds": 10, "series_seconds": 20}, "series_seconds"),
        ({"max_queries": True}, "max_queries"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        StatsStore(**kwargs)


def test_writers_and_readers_in_threads_lose_nothing(clock):
    stats = StatsStore(clock=clock)
    batches, per_batch = 200, 100
    stop = threading.Event()
    seen: list[list[int]] = [[], []]

    def read(totals: list[int]) -> None:
        while not stop.is_set():
            totals.append(stats.snapshot()["totals"]["http"]["count"])

    readers = [threading.Thread(target=read, args=(totals,)) for totals in seen]
    for reader in readers:
        reader.start()
    try:
        writers = [
            threading.Thread(
                target=lambda w=w: [
                    stats([http(clock, f"/w{w}") for _ in range(per_batch)]) for _ in range(batches)
                ]
            )
            for w in range(2)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert routes(stats.snapshot()) == {"/w0": batches * per_batch, "/w1": batches * per_batch}
    for totals in seen:  # each reader saw consistent, growing totals
        assert totals and totals == sorted(totals)
