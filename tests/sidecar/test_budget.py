"""What a process of the pod can make the real sidecar hold: bounded series, workers, counters.

Every test runs the sidecar as a subprocess and writes hostile datagrams to its Unix socket,
as any container of the pod can (issue 16). The worst case of the exposition is the issue's:
3,000 datagrams in one second, 1,000 services x 10 routes, label values at or far past the
length cap. The sidecar's peak memory is read from /proc (VmHWM), as the kernel's limit sees it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profilis.exporters.prometheus import OVERFLOW, EventMetrics
from profilis_sidecar.cli import build_parser, settings_from_args
from profilis_sidecar.settings import SidecarError, SidecarSettings
from tests.sidecar.helpers import (
    agent_datagram,
    counters,
    get,
    running_sidecar,
    scrape,
    short_dir,
    status,
    value,
    wait_for,
)

#: The memory limit the webhook gives an injected sidecar.
SIDECAR_LIMIT_BYTES = 128 << 20


def envelope(service: str, pid: int, seq: int, events: list[object], **health: int) -> bytes:
    health.setdefault("queue_capacity", 2048)
    return agent_datagram(service=service, pid=pid, seq=seq, events=events, **health)


def flood(label_chars: int) -> Iterator[bytes]:
    """1,000 services x 10 routes, functions and vendors: three datagrams a service."""
    for s in range(1000):
        service = f"svc{s:04d}-".ljust(min(label_chars, 255), "s")
        for seq, kind in enumerate(("HTTP", "FN", "DB"), start=1):
            events: list[object] = []
            for j in range(10):
                n = (s * 10 + j) % 1000
                event: dict[str, object] = {"kind": kind, "ts_ns": 1, "dur_ns": 1000 * (j + 1)}
                if kind == "HTTP":
                    route = f"/r{n:04d}/".ljust(label_chars, "x")
                    event.update(route=route, method="GET", status=200)
                elif kind == "FN":
                    event["fn"] = f"f{n:04d}.".ljust(label_chars, "y")
                else:
                    event["db_vendor"] = f"v{n:04d}".ljust(64, "z")
                events.append(event)
            yield envelope(service, 1000 + s, seq, events)


def sender(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(10.0)  # a full socket blocks the sender, as the kernel paces it
    sock.connect(str(path))
    return sock


def send_paced(sock: socket.socket, datagrams: list[bytes], seconds: float) -> None:
    start = time.monotonic()
    for index, data in enumerate(datagrams):
        sock.send(data)
        ahead = start + (index + 1) * seconds / len(datagrams) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def datagrams_counted(port: int, expected: int) -> dict[str, object]:
    return wait_for(
        lambda: counters(port), lambda c: c["datagrams"] >= expected, timeout=60.0, interval=0.1
    )


# --------------------------------------------------------------------------- exposition


@pytest.mark.parametrize("label_chars", [1000, 240], ids=["issue-long-labels", "at-length-cap"])
def test_the_issues_flood_gives_a_small_fast_scrape_within_the_memory_limit(
    label_chars: int,
) -> None:
    datagrams = list(flood(label_chars))
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        port = sidecar.port or 0
        with sender(tmp / "c.sock") as sock:
            send_paced(sock, datagrams, 1.0)
        assert datagrams_counted(port, len(datagrams))["events_received"] == 30_000
        started = time.monotonic()
        code, body = get(port, "/metrics", timeout=60.0)
        scrape_s = time.monotonic() - started
        peak = peak_rss_bytes(sidecar.pid)
        samples = scrape(port)

    # Before the budget: 460 MB, 452,000 lines, 6 s, 1.6 GB peak (label_chars=1000).
    assert code == 200
    assert len(body) < 16 << 20, f"/metrics is {len(body) / 1e6:.1f} MB"
    assert body.count(b"\n") < 30_000
    assert scrape_s < 10.0
    assert peak < SIDECAR_LIMIT_BYTES * 0.75, f"peak RSS {peak / 2**20:.0f} MiB"
    # Nothing is lost: what did not get its own series is in the overflow one, and counted.
    assert value(samples, "profilis_http_requests_total") == 10_000
    assert value(samples, "profilis_function_calls_total") == 10_000
    assert value(samples, "profilis_series_overflow_total") > 0
    assert value(samples, "profilis_series") <= 20_000 + 45
    assert value(samples, "profilis_http_requests_total", service=OVERFLOW, route=OVERFLOW) > 0
    if label_chars > 256:
        assert value(samples, "profilis_label_overflow_total", label="route") == 10_000


def test_label_length_and_series_budget_are_flags_and_environment_variables() -> None:
    def settings(*argv: str, **environ: str) -> SidecarSettings:
        return settings_from_args(build_parser().parse_args(list(argv)), environ)

    chosen = settings("--series-budget", "5000", PROFILIS_SIDECAR_MAX_LABEL_LENGTH="64")
    assert (chosen.series_budget, chosen.max_label_length, chosen.max_workers) == (5000, 64, 1024)
    with pytest.raises(SidecarError, match="PROFILIS_SIDECAR_SERIES_BUDGET"):
        settings(PROFILIS_SIDECAR_SERIES_BUDGET="lots")
    with pytest.raises(SidecarError, match=r"series_budget.*100"):
        settings("--series-budget", "5")
    with pytest.raises(SidecarError, match="max_label_length"):
        settings(PROFILIS_SIDECAR_MAX_LABEL_LENGTH="4")


def test_in_process_a_long_value_overflows_and_the_budget_collapses_to_one_series() -> None:
    metrics = EventMetrics(max_label_length=32, series_budget=100)
    http = {"kind": "HTTP", "dur_ns": 1, "method": "GET", "status": 200}
    metrics.observe([{**http, "route": "/" + "a" * 40}], "svc")
    metrics.observe([{**http, "route": f"/r{n}"} for n in range(20)], "svc")
    families = {family.name: family for family in metrics.collect()}
    requests = {
        (sample.labels["service"], sample.labels["route"]): sample.value
        for sample in families["profilis_http_requests"].samples
    }
    # 100 series (15 a route: the counter and 14 of histogram) hold the long route's overflow
    # series and five routes; the other fifteen share the one all-overflow series.
    assert requests.pop(("svc", OVERFLOW)) == 1
    assert requests.pop((OVERFLOW, OVERFLOW)) == 15
    assert requests == {("svc", f"/r{n}"): 1 for n in range(5)}
    assert families["profilis_series_overflow"].samples[0].value == 15
    assert families["profilis_series"].samples[0].value == 105
    overflows = families["profilis_label_overflow"].samples
    assert [(s.labels["label"], s.value) for s in overflows] == [("route", 1)]


# --------------------------------------------------------------------------- worker table


def test_health_only_envelopes_of_made_up_workers_are_refused_past_the_cap() -> None:
    made_up = [envelope("w", 10_000 + n, 1, []) for n in range(20_000)]
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        port = sidecar.port or 0
        with sender(tmp / "c.sock") as sock:
            send_paced(sock, made_up, 2.0)
            got = datagrams_counted(port, len(made_up))
            code, body = get(port, "/_profilis/status.json")
            # Room frees as workers expire; until then a real one is refused too, and counted.
            sock.send(envelope("real", 7, 1, [], exported=0))
            refused = wait_for(
                lambda: counters(port),
                lambda c: c["datagrams"] > len(made_up),
                timeout=10.0,
            )

    # Before the cap: 20,000 live workers, a 10 MB status.json.
    assert got["workers_live"] == 1024  # the default --max-workers
    assert got["rejected"].get("workers") == len(made_up) - 1024
    assert code == 200 and len(json.loads(body)["workers"]) == 1024
    assert len(body) < 1_000_000
    assert refused["rejected"]["workers"] == len(made_up) - 1024 + 1


# --------------------------------------------------------------------------- health counters


def test_counters_no_agent_could_report_are_refused_and_real_ones_still_count() -> None:
    real = ("app", 4242)
    http = {"kind": "HTTP", "ts_ns": 1, "dur_ns": 5, "route": "/a", "method": "GET", "status": 200}
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        port = sidecar.port or 0
        with sender(tmp / "c.sock") as sock:
            sock.send(envelope(*real, 1, [http], queue_depth=3, dropped_queue=2, exported=1))
            # One datagram from a made-up process: the issue's 9.22e18 drops.
            sock.send(envelope("x", 999, 1, [], dropped_queue=2**63 - 1, enqueued=2**63 - 1))
            # Drops it never enqueued.
            sock.send(envelope("x", 998, 1, [], dropped_queue=50, enqueued=10))
            # The real worker's identity with a huge sequence jump and another queue depth.
            sock.send(envelope(*real, 2**62, [], queue_depth=2000, dropped_queue=2))
            # The same identity, counters jumping by 2**39 in an instant.
            sock.send(envelope(*real, 2, [], queue_depth=3, dropped_queue=2**39))
            sock.send(envelope(*real, 2, [http], queue_depth=4, dropped_queue=3, exported=2))
            datagrams_counted(port, 6)
        samples = scrape(port)
        workers = status(port)["workers"]

    # Before: dropped{queue} 9.2e18, batches lost 4.6e18, the real worker's depth 2000.
    assert value(samples, "profilis_sidecar_rejected_datagrams_total", reason="implausible") == 4
    assert value(samples, "profilis_events_dropped_total", reason="queue") == 3
    assert value(samples, "profilis_sidecar_batches_lost_total") == 0
    assert value(samples, "profilis_queue_depth", worker="4242") == 4
    assert value(samples, "profilis_events_exported_total") == 2
    assert value(samples, "profilis_http_requests_total", service="app") == 2
    assert [(w["service"], w["pid"], w["seq"]) for w in workers] == [("app", 4242, 2)]


def test_a_restart_is_still_a_restart_and_a_paused_minute_of_drops_still_counts() -> None:
    with short_dir() as tmp, running_sidecar(tmp / "c.sock") as sidecar:
        port = sidecar.port or 0
        with sender(tmp / "c.sock") as sock:
            sock.send(envelope("app", 7, 40, [], dropped_queue=10, exported=100))
            # A minute's drops at 5 million events/s, reported at once after a pause.
            sock.send(envelope("app", 7, 41, [], dropped_queue=300_000_010, exported=100))
            # The pid reused by a new process: its sequence starts again.
            sock.send(envelope("app", 7, 1, [], dropped_queue=5, exported=1))
            datagrams_counted(port, 3)
        samples = scrape(port)

    assert value(samples, "profilis_sidecar_rejected_datagrams_total", reason="implausible") == 0
    assert value(samples, "profilis_events_dropped_total", reason="queue") == 300_000_015
    assert value(samples, "profilis_events_exported_total") == 101
