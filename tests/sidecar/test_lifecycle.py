"""The sidecar process's life: SIGKILL and restart under load, SIGTERM drain, its socket file.

Agents keep running through a sidecar crash: they never block or fail, they count what they
could not send, and the restarted sidecar reports those drops and resumes counting.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from tests.sidecar.helpers import (
    counters,
    finish_loadgen,
    get,
    running_sidecar,
    scrape,
    short_dir,
    sidecar_argv,
    start_loadgen,
    status,
    stop_loadgen,
    value,
    wait_for,
)
from tests.support.processes import free_port, run_process

pytestmark = pytest.mark.slow


def test_sigkill_under_load_then_restart_agents_carry_on_and_drops_are_reported() -> None:
    agents, events, rate = 4, 16_000, 4_000.0  # 4 s of steady load per agent
    port = free_port()
    with short_dir() as tmp:
        path = tmp / "c.sock"
        load = None
        try:
            with running_sidecar(path, port=port) as first:
                load = start_loadgen(
                    f"unix://{path}",
                    *("--agents", str(agents), "--events", str(events), "--rate", str(rate)),
                    *("--reconnect-interval", "0.1", "--heartbeat-interval", "0.5"),
                )
                # Every agent reporting, not just enough events: on a loaded machine one
                # agent may start late.
                before_kill = wait_for(
                    lambda: counters(port),
                    lambda c: c["events_received"] > 5_000 and c["workers_live"] == agents,
                    timeout=60,
                )
                assert before_kill["workers_live"] == agents
                first.signal(signal.SIGKILL)
                first.proc.wait(5)
            killed_at = time.monotonic()
            time.sleep(1.0)  # the agents run with no sidecar: their sends fail, counted
            with running_sidecar(path, port=port) as second:
                restarted_at = time.monotonic()
                resumed = wait_for(
                    lambda: counters(port), lambda c: c["events_received"] > 0, timeout=60
                )
                resumed_after_s = time.monotonic() - restarted_at
                summary = finish_loadgen(load, timeout=120)
                final = wait_for(
                    lambda: counters(port),
                    lambda c: c["events_exported"] >= summary["sent"],
                    timeout=60,
                )
                samples = scrape(second.port or 0)
        finally:
            if load is not None:
                stop_loadgen(load)

    assert resumed["events_received"] > 0
    # Agents never raised: every agent finished, all events accounted for. (Their writer
    # threads may wait for room in a busy sidecar's buffer, by design; that app threads never
    # wait is tests/sidecar/test_backpressure.py's subject.)
    assert summary["failed_agents"] == 0
    assert summary["unaccounted"] == 0
    lost_to_the_crash = summary["dropped"]["transport"]
    assert lost_to_the_crash > 0
    # The new sidecar learns every agent's cumulative counts: drops during the outage
    # included, exactly as the agents counted them.
    assert final["dropped"]["transport"] == lost_to_the_crash
    assert value(samples, "profilis_events_dropped_total", reason="transport") == lost_to_the_crash
    assert final["events_exported"] == summary["sent"]
    assert value(samples, "profilis_sidecar_workers") == agents
    # Metrics resumed: what the second sidecar counted came after the restart.
    received = value(samples, "profilis_sidecar_events_received_total")
    assert 0 < received <= summary["sent"]
    print(
        f"\nkill/restart: outage {restarted_at - killed_at:.2f} s, {lost_to_the_crash} events "
        f"dropped by the agents (counted), first events {resumed_after_s:.2f} s after restart, "
        f"{received:.0f} counted by the new sidecar of {summary['sent']} sent in total, "
        f"max batch send {summary['send_ns_max'] / 1e6:.2f} ms"
    )


def test_sigterm_stops_ingesting_drains_and_exits_in_bounded_time() -> None:
    with short_dir() as tmp, running_sidecar(tmp / "c.sock", "--drain-timeout", "2") as proc:
        summary_line = None
        load = start_loadgen(
            f"unix://{tmp}/c.sock", "--agents", "2", "--events", "100000", "--rate", "20000"
        )
        try:
            wait_for(
                lambda: counters(proc.port or 0),
                lambda c: c["events_received"] > 1000,
                timeout=15,
            )
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            code = proc.proc.wait(30)
            took = time.monotonic() - started
            summary_line = [line for line in proc.output().splitlines() if "stopped" in line]
            assert not (tmp / "c.sock").exists()
        finally:
            stop_loadgen(load)

    assert code == 0
    assert took < 10.0  # the drain deadline plus room for a busy machine, not minutes
    assert summary_line, "one summary line at exit"


def test_datagrams_that_are_not_envelopes_are_counted_by_reason() -> None:
    with short_dir() as tmp, running_sidecar(tmp / "c.sock", "--max-datagram-bytes", "4096") as p:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sender.connect(str(tmp / "c.sock"))
            for data in (
                b"\x00\xff garbage",
                b"{not json",
                b"x" * 5000,
                b'{"v": 1, "events": [{}, {}]}',
                b'{"v": 2, "service": 7, "events": []}',
            ):
                sender.send(data)
        finally:
            sender.close()
        samples = wait_for(
            lambda: scrape(p.port or 0),
            lambda s: value(s, "profilis_sidecar_datagrams_received_total") >= 5,
            timeout=10,
        )
        assert status(p.port or 0)["sidecar"]["ready"] is True  # still fine

    def rejected(reason: str) -> float:
        return value(samples, "profilis_sidecar_rejected_datagrams_total", reason=reason)

    assert [rejected(r) for r in ("malformed", "oversized", "version", "types")] == [2, 1, 1, 1]
    assert value(samples, "profilis_events_dropped_total", reason="decode") == 2


def test_a_stale_socket_file_is_replaced_with_the_asked_permissions() -> None:
    with short_dir() as tmp:
        path = tmp / "run" / "c.sock"
        path.parent.mkdir()
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(str(path))
        stale.close()  # the file stays, nobody listens: what a SIGKILLed sidecar leaves

        with running_sidecar(path, "--socket-mode", "620"):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            # A second sidecar on the same live socket refuses to start.
            second = subprocess.run(
                sidecar_argv(path, free_port()), capture_output=True, text=True, timeout=30
            )

    assert mode == 0o620
    assert second.returncode == 1
    assert "already listening" in second.stderr


def test_a_file_that_is_not_a_socket_is_never_replaced() -> None:
    with short_dir() as tmp:
        path = tmp / "c.sock"
        path.write_text("precious")

        done = subprocess.run(
            sidecar_argv(path, free_port()), capture_output=True, text=True, timeout=30
        )

        assert done.returncode == 1
        assert "not a socket" in done.stderr
        assert path.read_text() == "precious"


def test_endpoints_and_the_environment() -> None:
    port = free_port()
    with short_dir() as tmp:
        env = {
            "PROFILIS_SIDECAR_LISTEN": f"unix://{tmp}/a.sock, udp://127.0.0.1:{free_port()}",
            "PROFILIS_SIDECAR_METRICS_PORT": str(port),
            "PROFILIS_SERVICE_NAME": "shop",
            "POD_NAME": "shop-7d9f-abcde",
            "POD_NAMESPACE": "prod",
        }
        # No --listen, no --metrics-port: both come from the environment.
        argv = [sys.executable, "-m", "profilis_sidecar", "--metrics-host", "127.0.0.1"]
        argv += ["--log-interval", "0.2"]

        started = time.monotonic()
        with run_process(argv, env=env, port=port) as proc:
            udp_port = int(env["PROFILIS_SIDECAR_LISTEN"].rsplit(":", 1)[1])
            summary = finish_loadgen(
                start_loadgen(f"udp://127.0.0.1:{udp_port}", "--agents", "1", "--events", "300"),
                timeout=30,
            )
            samples = wait_for(
                lambda: scrape(port),
                lambda s: value(s, "profilis_sidecar_events_received_total") >= 300,
                timeout=10,
            )
            info = status(port)
            codes = {path: get(port, path)[0] for path in ("/healthz", "/readyz", "/nope")}
            time.sleep(0.5)  # a few summary intervals
            log = proc.output()
            lifetime_s = time.monotonic() - started

    assert summary["sent"] == 300
    assert value(samples, "profilis_http_requests_total", service="loadgen") == 300
    assert codes == {"/healthz": 200, "/readyz": 200, "/nope": 404}
    assert info["sidecar"]["pod"] == "shop-7d9f-abcde"
    assert info["sidecar"]["namespace"] == "prod"
    assert info["sidecar"]["service"] == "shop"
    assert [w["pid"] for w in info["workers"]] == [summary["per_agent"][0]["pid"]]
    # Pod and namespace are in the logs, never in metric labels.
    assert "pod=prod/shop-7d9f-abcde" in log
    assert not any(
        "pod" in labels or "namespace" in labels for rows in samples.values() for labels, _ in rows
    )
    # One summary line per 0.2 s interval, not one per event.
    assert 1 <= sum("events=+" in line for line in log.splitlines()) <= lifetime_s / 0.2 + 1
