"""The metrics port against hostile clients: half-open floods, slow heads, idle keep-alives,
HEAD requests, the dashboard switch and its token, with the real sidecar on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.sidecar.helpers import (
    get,
    running_sidecar,
    scrape,
    short_dir,
    sidecar_argv,
    value,
    wait_for,
)
from tests.support.processes import free_port

TOKEN = "s3cret-token"


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _timed(method: str, port: int, path: str, headers: dict[str, str] | None = None) -> tuple:
    """(status, headers, body, seconds) of one request on a fresh connection."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body, time.monotonic() - started
    finally:
        connection.close()


def _reset(sockets: list[socket.socket]) -> None:
    """Close with RST (SO_LINGER 0), as a client that crashed or gave up does."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@contextlib.contextmanager
def _half_open(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections: half send nothing, half a partial request line."""
    sockets: list[socket.socket] = []
    try:
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            if n % 2:
                sock.sendall(b"GET /metr")
        yield sockets
    finally:
        _reset(sockets)


def _closed_by_server(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), None if it did not."""
    started = time.monotonic()
    sock.settimeout(within_s)
    try:
        while True:
            if not sock.recv(4096):
                return time.monotonic() - started
    except ConnectionResetError:
        return time.monotonic() - started
    except TimeoutError:
        return None


def test_500_half_open_connections_neither_lock_out_the_scraper_nor_cost_a_thread_each():
    with short_dir() as tmp:
        port = free_port()
        with running_sidecar(tmp / "c.sock", port=port) as sidecar:
            assert _timed("GET", port, "/metrics")[0] == 200
            threads_before = _threads(sidecar.pid)
            with _half_open(port, 500):
                # Accepted in order: once this scrape is answered, all 500 were accepted.
                status, _, body, seconds = _timed("GET", port, "/metrics")
                assert status == 200 and b"profilis_sidecar_workers" in body
                assert seconds < 20, seconds  # answered at all; bounded for a busy machine
                threads_under_flood = _threads(sidecar.pid)
                fds_under_flood = _open_fds(sidecar.pid)
                for probe in ("/healthz", "/readyz"):
                    status, _, _, seconds = _timed("GET", port, probe)
                    assert status == 200 and seconds < 20, (probe, status, seconds)
                samples = scrape(port)
            # A handful of render threads at most, whatever the number of clients.
            assert threads_under_flood <= threads_before + 6, (
                threads_before,
                threads_under_flood,
            )
            # The default cap of 64 connections, plus the process's own few descriptors.
            assert fds_under_flood <= 64 + 24, fds_under_flood
            assert value(samples, "profilis_sidecar_http_connections") <= 64
            evicted = value(
                samples, "profilis_sidecar_http_connections_closed_total", reason="evicted"
            )
            assert evicted >= 500 - 64, evicted
            # The reset clients are gone: the server still answers, and kept no thread.
            assert wait_for(
                lambda: _timed("GET", port, "/healthz")[0], lambda s: s == 200, timeout=10
            )
            assert _threads(sidecar.pid) <= threads_before + 6
            assert sidecar.stop() == 0
            output = sidecar.output()
    # No traceback for a client that misbehaves, and not a line for each one either.
    assert "Traceback" not in output, output[-3000:]
    bad_client_lines = [line for line in output.splitlines() if "closed HTTP connection" in line]
    assert 1 <= len(bad_client_lines) <= 3, bad_client_lines


def test_slow_heads_and_idle_keep_alive_connections_are_closed_on_time():
    with short_dir() as tmp:
        port = free_port()
        limits = {
            "PROFILIS_SIDECAR_HTTP_READ_TIMEOUT": "1",
            "PROFILIS_SIDECAR_HTTP_IDLE_TIMEOUT": "1.5",
        }
        with running_sidecar(tmp / "c.sock", port=port, env=limits):
            silent = socket.create_connection(("127.0.0.1", port), timeout=5)
            # A slowloris: a byte every 0.2 s never completes its head and must not keep
            # the connection open by dribbling (the deadline is for the whole head).
            dribbling = socket.create_connection(("127.0.0.1", port), timeout=5)
            started = time.monotonic()
            closed_dribbling = None
            with contextlib.suppress(OSError):
                for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                    if time.monotonic() - started > 6:
                        break
                    dribbling.send(bytes([byte]))
                    time.sleep(0.2)
            closed_dribbling = time.monotonic() - started
            assert closed_dribbling < 4, closed_dribbling
            assert _closed_by_server(silent, within_s=5) is not None
            _reset([silent, dribbling])

            # Keep-alive: two requests on one connection, then the server closes it idle.
            kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(2):
                kept.request("GET", "/healthz")
                response = kept.getresponse()
                assert (response.status, response.read()) == (200, b"ok\n")
            assert kept.sock is not None
            closed_after = _closed_by_server(kept.sock, within_s=6)
            assert closed_after is not None and closed_after >= 1.0, closed_after
            kept.close()


def test_head_answers_headers_without_a_body_and_keeps_the_connection_usable():
    with short_dir() as tmp:
        port = free_port()
        with running_sidecar(tmp / "c.sock", port=port):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for path in (
                "/metrics",
                "/healthz",
                "/readyz",
                "/_profilis/",
                "/_profilis/status.json",
            ):
                connection.request("HEAD", path)
                response = connection.getresponse()
                assert response.status == 200, (path, response.status)
                assert int(response.getheader("Content-Length") or 0) > 0, path
                assert response.read() == b"", path
            # No stray body bytes were left on the connection: the next GET parses.
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"ok\n")
            connection.close()
            assert _timed("HEAD", port, "/healthz")[1]["Content-Length"] == "3"
            # Other methods are refused as such, not as unknown.
            status, headers, _, _ = _timed("POST", port, "/metrics")
            assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_the_dashboard_and_status_json_can_be_switched_off_by_variable_or_flag():
    with short_dir() as tmp:
        for extra, env in (((), {"PROFILIS_SIDECAR_UI": "off"}), (("--no-ui",), {})):
            port = free_port()
            with running_sidecar(tmp / "c.sock", *extra, port=port, env=env):
                for path in ("/_profilis/", "/_profilis", "/_profilis/status.json"):
                    assert get(port, path)[0] == 404, (extra, env, path)
                assert get(port, "/_profilis/metrics.json")[0] == 404
                for path in ("/metrics", "/healthz", "/readyz"):
                    assert get(port, path)[0] == 200, path
        # "on" is the default, and a wrong word stops start-up naming the variable.
        port = free_port()
        with running_sidecar(tmp / "c.sock", port=port, env={"PROFILIS_SIDECAR_UI": "on"}):
            assert get(port, "/_profilis/")[0] == 200
        done = subprocess.run(
            sidecar_argv(tmp / "c.sock", free_port()),
            env={**os.environ, "PROFILIS_SIDECAR_UI": "maybe"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "PROFILIS_SIDECAR_UI" in done.stderr and "on, off or token" in done.stderr


def test_token_mode_closes_the_page_while_its_secret_is_missing_and_opens_it_with_one():
    # What the operator sets when a ProfilisConfig names a token Secret (an optional
    # secretKeyRef): a missing Secret leaves the variable unset.
    with short_dir() as tmp:
        port = free_port()
        with running_sidecar(tmp / "c.sock", port=port, env={"PROFILIS_SIDECAR_UI": "token"}):
            assert get(port, "/_profilis/status.json")[0] == 404
            assert get(port, "/metrics")[0] == 200
        port = free_port()
        env = {"PROFILIS_SIDECAR_UI": "token", "PROFILIS_SIDECAR_UI_TOKEN": TOKEN}
        with running_sidecar(tmp / "c.sock", port=port, env=env):
            assert get(port, "/_profilis/status.json")[0] == 401
            assert get(port, f"/_profilis/status.json?token={TOKEN}")[0] == 200


def test_status_json_asks_for_the_dashboard_token_while_metrics_and_probes_stay_open():
    with short_dir() as tmp:
        port = free_port()
        env = {"PROFILIS_SIDECAR_UI_TOKEN": TOKEN}
        with running_sidecar(tmp / "c.sock", port=port, env=env):
            status, headers, body, _ = _timed("GET", port, "/_profilis/status.json")
            assert status == 401 and b"token" in body
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert _timed("HEAD", port, "/_profilis/status.json")[0] == 401
            wrong = {"Authorization": "Bearer wrong"}
            assert _timed("GET", port, "/_profilis/status.json", wrong)[0] == 401
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            status, _, body, _ = _timed("GET", port, "/_profilis/status.json", bearer)
            assert status == 200 and b'"counters"' in body
            assert get(port, f"/_profilis/status.json?token={TOKEN}")[0] == 200
            for path in ("/metrics", "/healthz", "/readyz"):
                assert get(port, path)[0] == 200, path


def test_malformed_and_oversized_requests_are_answered_or_closed_without_a_traceback():
    with short_dir() as tmp:
        port = free_port()
        with running_sidecar(tmp / "c.sock", port=port) as sidecar:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"NONSENSE\r\n\r\n")
                assert b" 400 " in sock.recv(4096)
                assert _closed_by_server(sock, within_s=5) is not None
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000)
                assert _closed_by_server(sock, within_s=5) is not None
            assert get(port, "/healthz")[0] == 200
            samples = scrape(port)
            closed = "profilis_sidecar_http_connections_closed_total"
            assert value(samples, closed, reason="malformed") == 1
            assert value(samples, closed, reason="too_large") == 1
            assert sidecar.stop() == 0
            assert "Traceback" not in sidecar.output()
