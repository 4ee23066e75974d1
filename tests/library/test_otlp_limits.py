"""OTLPExporter's limits against real receivers on 127.0.0.1: ``timeout_s`` is the whole
budget of a request, whatever a receiver trickles, and the exporter says when it is failing.

The trickling receiver is a real process (``trickle_server.py``); the well-behaved one is
the OTLP receiver of the exporter tests.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from profilis.exporters.otlp import OTLPExporter
from tests.exporters.otlp_receiver import Answer, Receiver
from tests.support.processes import RunningProcess, free_port, run_process

TRICKLE = Path(__file__).with_name("trickle_server.py")
T0 = 1_700_000_000_000_000_000


def fn_events(count: int) -> list[dict[str, object]]:
    return [{"kind": "FN", "ts_ns": T0 + n, "dur_ns": 10, "fn": f"job{n}"} for n in range(count)]


def trickle(mode: str, interval_s: float) -> Iterator[RunningProcess]:
    port = free_port()
    argv = [sys.executable, str(TRICKLE), str(port), str(interval_s), "60", mode]
    with run_process(argv, port=port) as proc:
        yield proc


def timed_call(exporter: OTLPExporter, batch: list[dict[str, object]], limit_s: float) -> float:
    """Seconds one call took; ``limit_s`` if it was still running then (the test fails)."""
    call = threading.Thread(target=exporter, args=(batch,), daemon=True)
    started = time.monotonic()
    call.start()
    call.join(limit_s)
    return limit_s if call.is_alive() else time.monotonic() - started


@pytest.mark.parametrize("mode", ["head", "body"])
def test_a_trickling_receiver_costs_one_timeout_not_one_per_byte(mode: str) -> None:
    # A byte every 0.4 s: each read waits less than the 1 s timeout, and the whole answer
    # (80 bytes of status line and headers, or a 64-byte body) takes 25-32 s. Before, the
    # timeout applied to each read, so the call lasted that long.
    for proc in trickle(mode, 0.4):
        exporter = OTLPExporter(f"http://127.0.0.1:{proc.port}", timeout_s=1.0)
        took = timed_call(exporter, fn_events(3), limit_s=8.0)

        # One budget, with room for a busy machine: per-read timeouts took 25 s or more.
        assert 0.9 <= took < 5.0, f"a 1 s budget took {took:.1f} s"
        assert exporter.errors == 1 and exporter.pending == 3 and exporter.exported == 0
        assert exporter.failing
        health = exporter.export_health()
        assert (health.name, health.errors, health.pending, health.backing_off) == (
            "otlp",
            1,
            3,
            True,
        )
        # Inside the backoff no request is made: the next call costs nothing.
        assert timed_call(exporter, fn_events(1), limit_s=8.0) < 0.1


def test_an_answer_that_closes_the_connection_is_still_read_whole() -> None:
    # The answer's reader must keep the socket open after http.client closes the connection.
    class Closing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Closing)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}).start()
    try:
        exporter = OTLPExporter(f"http://127.0.0.1:{server.server_port}", timeout_s=5.0)
        for _ in range(3):
            exporter(fn_events(600))  # two requests a call (512 spans at most)
    finally:
        server.shutdown()
        server.server_close()
    exporter.close()
    assert (exporter.exported, exporter.errors, exporter.pending) == (1800, 0, 0)
    assert not exporter.failing


def test_failing_from_a_refused_request_until_one_succeeds() -> None:
    receiver = Receiver(free_port()).start()
    try:
        exporter = OTLPExporter(receiver.endpoint, timeout_s=5.0)
        exporter(fn_events(2))
        assert not exporter.failing and exporter.exported == 2

        # A final refusal (bad credentials, say) loses every span: failing, though no backoff.
        receiver.answers.append(Answer(status=401))
        exporter(fn_events(2))
        assert exporter.failing and exporter.retry_in_s == 0.0
        assert exporter.export_health().dropped == 2

        exporter(fn_events(2))
        assert not exporter.failing and exporter.exported == 4
        exporter.close()
    finally:
        receiver.stop()
