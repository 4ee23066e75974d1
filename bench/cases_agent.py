"""The zero-code agent's per-request cost: the same app under the same server, with and without.

``python -m bench.cases_agent [--quick]`` prints a table; ``request_overhead`` is the same
measurement as a ``bench.registry`` case (value: the Flask/gunicorn overhead, ns/request).
Standard library only at import time, like every case module.

For each server the app runs twice at once, from our venv: without the agent (nothing on
PYTHONPATH) and with it (the payload from ``profilis-agent install`` first on PYTHONPATH,
PROFILIS_* pointing at a real sidecar). One sequential HTTP client alternates blocks of
requests between the two, so drift (CPU frequency, other load) hits both alike. Reported:
the median client-side latency per request, and the server processes' CPU time per request
(from /proc, the collector's writer and heartbeat threads included), each with the
difference. The sidecar's /metrics must account for every instrumented request, or the row
fails: a broken agent is cheap too.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.app.procs import free_port, wait_for_port
from bench.registry import CaseResult, Settings

__all__ = ["Row", "main", "measure", "request_overhead"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BLOCK = 250  # requests per block; blocks alternate between the two servers
BLOCKS, BLOCKS_QUICK = 16, 4
WARMUP = 200

FLASK_APP = """
import os
from flask import Flask, jsonify
from sqlalchemy import create_engine, text

engine = create_engine(f"sqlite:///{os.environ['BENCH_DB']}")
app = Flask(__name__)

@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id)

@app.get("/users/<int:user_id>")
def user(user_id):
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).first()
    return jsonify(name=row[0])
"""
FASTAPI_APP = """
from fastapi import FastAPI

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"id": item_id}
"""


@dataclass(frozen=True)
class Server:
    label: str
    argv: tuple[str, ...]  # "{port}" is replaced
    path: str


def _servers() -> tuple[Server, ...]:
    bin_dir = Path(sys.executable).parent
    gunicorn = (str(bin_dir / "gunicorn"), "--workers", "1", "--bind", "127.0.0.1:{port}")
    uvicorn = (str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}")
    return (
        Server("gunicorn sync x1, Flask", (*gunicorn, "bench_flask:app"), "/items/7"),
        Server("gunicorn sync x1, Flask + SQLAlchemy", (*gunicorn, "bench_flask:app"), "/users/1"),
        Server(
            "uvicorn x1, FastAPI", (*uvicorn, "--no-access-log", "bench_fastapi:app"), "/items/7"
        ),
    )


@dataclass(frozen=True)
class Row:
    label: str
    path: str
    latency_off_us: float
    latency_on_us: float
    cpu_off_us: float
    cpu_on_us: float
    requests: int

    @property
    def latency_overhead_us(self) -> float:
        return self.latency_on_us - self.latency_off_us

    @property
    def cpu_overhead_us(self) -> float:
        return self.cpu_on_us - self.cpu_off_us


@contextlib.contextmanager
def _process(
    argv: Sequence[str], env: dict[str, str], cwd: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    log = open(cwd / f"log-{port}.txt", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(child) for child in task.read_text().split()]
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _block(port: int, path: str, count: int) -> list[float]:
    """``count`` sequential GETs; each one's latency in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - start)
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
    finally:
        conn.close()
    return latencies


def _sidecar_requests(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("profilis_http_requests_total{")
    )


def measure(blocks: int = BLOCKS) -> list[Row]:
    """Every server's row (see the module docstring)."""
    work = Path(tempfile.mkdtemp(prefix="pfa-"))
    try:
        return _measure_in(work, blocks)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure_in(work: Path, blocks: int) -> list[Row]:
    (work / "bench_flask.py").write_text(textwrap.dedent(FLASK_APP))
    (work / "bench_fastapi.py").write_text(textwrap.dedent(FASTAPI_APP))
    import sqlite3

    with sqlite3.connect(work / "bench.db") as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'ada')")
    payload = work / "payload"
    subprocess.run(
        [sys.executable, "-m", "profilis.agent.cli", "install", str(payload)],
        check=True,
        capture_output=True,
    )
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("PROFILIS_") and k != "PYTHONPATH"
    }
    base_env["BENCH_DB"] = str(work / "bench.db")
    socket_path = work / "c.sock"
    metrics_port = free_port()
    sidecar = (
        *(sys.executable, "-m", "profilis_sidecar", "--listen", f"unix://{socket_path}"),
        *("--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)),
    )
    rows = []
    with _process(sidecar, base_env, work, metrics_port):
        for server in _servers():
            rows.append(
                _compare(server, work, payload, base_env, socket_path, metrics_port, blocks)
            )
    return rows


def _compare(
    server: Server,
    work: Path,
    payload: Path,
    base_env: dict[str, str],
    socket_path: Path,
    metrics_port: int,
    blocks: int,
) -> Row:
    agent_env = {
        **base_env,
        "PYTHONPATH": f"{payload}:{work}",
        "PROFILIS_COLLECTOR_ADDRESS": f"unix://{socket_path}",
    }
    ports = {"off": free_port(), "on": free_port()}
    envs = {"off": {**base_env, "PYTHONPATH": str(work)}, "on": agent_env}
    latencies: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, float] = {"off": 0.0, "on": 0.0}
    before = _sidecar_requests(metrics_port)
    with contextlib.ExitStack() as stack:
        procs = {
            mode: stack.enter_context(
                _process(
                    [a.replace("{port}", str(ports[mode])) for a in server.argv],
                    envs[mode],
                    work,
                    ports[mode],
                )
            )
            for mode in ("off", "on")
        }
        for mode in ("off", "on"):
            _block(ports[mode], server.path, WARMUP)
        for index in range(blocks):
            # Alternate which goes first, so neither always follows the other.
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            for mode in order:
                start_cpu = _tree_cpu_s(procs[mode].pid)
                latencies[mode] += _block(ports[mode], server.path, BLOCK)
                cpu[mode] += _tree_cpu_s(procs[mode].pid) - start_cpu
        # Every instrumented request must have reached the sidecar.
        expected = before + WARMUP + blocks * BLOCK
        deadline = time.monotonic() + 10
        while _sidecar_requests(metrics_port) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = _sidecar_requests(metrics_port)
        if seen != expected:
            raise RuntimeError(f"{server.label}: the sidecar counted {seen - before} requests")
    count = blocks * BLOCK
    return Row(
        server.label,
        server.path,
        latency_off_us=statistics.median(latencies["off"]) * 1e6,
        latency_on_us=statistics.median(latencies["on"]) * 1e6,
        cpu_off_us=cpu["off"] / count * 1e6,
        cpu_on_us=cpu["on"] / count * 1e6,
        requests=count,
    )


def render(rows: Sequence[Row]) -> str:
    header = (
        f"{'server, app':38} {'path':10} {'median latency off/on (us)':>27} {'+us':>7}"
        f" {'server CPU/request off/on (us)':>31} {'+us':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        latency = f"{row.latency_off_us:.0f} / {row.latency_on_us:.0f}"
        cpu = f"{row.cpu_off_us:.0f} / {row.cpu_on_us:.0f}"
        lines.append(
            f"{row.label:38} {row.path:10} {latency:>27} {row.latency_overhead_us:>+7.1f}"
            f" {cpu:>31} {row.cpu_overhead_us:>+7.1f}"
        )
    lines.append(f"({rows[0].requests} requests per configuration; sequential client)")
    return "\n".join(lines)


def request_overhead(settings: Settings) -> CaseResult:
    """A registry case: the first row's latency overhead, in ns per request."""
    rows = measure(BLOCKS_QUICK if settings.quick else BLOCKS)
    first = rows[0]
    return CaseResult(
        value=first.latency_overhead_us * 1000,
        unit="ns/op",
        reps=[first.latency_overhead_us * 1000],
        info={"rows": [{**row.__dict__} for row in rows]},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases_agent")
    parser.add_argument("--quick", action="store_true", help="fewer blocks (a smoke run)")
    parser.add_argument("--blocks", type=int, help=f"blocks of {BLOCK} requests per configuration")
    args = parser.parse_args(argv)
    blocks = args.blocks or (BLOCKS_QUICK if args.quick else BLOCKS)
    print(render(measure(max(2, blocks))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
