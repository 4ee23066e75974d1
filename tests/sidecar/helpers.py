"""Shared by the sidecar tests: start the real sidecar, run the load tool, read /metrics.

Every process is a real subprocess on 127.0.0.1 (``tests.support.processes``), every wait
polls with a deadline, and /metrics is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson
from prometheus_client.parser import text_string_to_metric_families

from profilis.exporters._wire import WireHealth, encode_header, join_datagram
from tests.support.processes import RunningProcess, free_port, run_process

T = TypeVar("T")
Families = dict[str, list[tuple[dict[str, str], float]]]


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path: a socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pfs-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sidecar_argv(socket_path: Path | str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "profilis_sidecar",
        "--listen",
        f"unix://{socket_path}",
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        str(port),
        *extra,
    ]


@contextlib.contextmanager
def running_sidecar(
    socket_path: Path | str,
    *extra: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningProcess]:
    """The sidecar as a subprocess, ready (metrics port answering) when the block starts."""
    port = port or free_port()
    with run_process(sidecar_argv(socket_path, port, *extra), port=port, env=env) as proc:
        yield proc


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> Families:
    """/metrics as {sample name: [(labels, value)]}, parsed by prometheus_client."""
    status, body = get(port, "/metrics")
    assert status == 200
    samples: Families = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Families, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())
    )


def status(port: int) -> dict[str, Any]:
    code, body = get(port, "/_profilis/status.json")
    assert code == 200
    result: dict[str, Any] = json.loads(body)
    return result


def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float, interval: float = 0.05
) -> T:
    """Call ``probe`` until ``done(result)``; return the last result (the caller asserts)."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = probe()
    return result


def loadgen_argv(address: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "profilis_sidecar.loadgen", "--address", address, *options]


def run_loadgen(address: str, *options: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run the load tool to completion and return its JSON summary."""
    done = subprocess.run(
        loadgen_argv(address, *options),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def start_loadgen(address: str, *options: str) -> subprocess.Popen[str]:
    """The load tool in the background, in its own process group (see ``stop_loadgen``)."""
    return subprocess.Popen(
        loadgen_argv(address, *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish_loadgen(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_loadgen(process)
        raise
    assert process.returncode == 0, err[-3000:]
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def counters(port: int) -> dict[str, Any]:
    """The sidecar's own counters, from /_profilis."""
    result: dict[str, Any] = status(port)["counters"]
    return result


def stop_loadgen(process: subprocess.Popen[str]) -> None:
    """Kill a load run and its agent processes (its process group); close its pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def agent_datagram(
    *,
    pid: int = 10,
    seq: int = 1,
    events: list[object] | None = None,
    service: str = "svc",
    **health: int,
) -> bytes:
    """One envelope as an agent sends it; ``health`` fields default as a real agent's do:
    its queue took every event it dropped, queued or sent."""
    health.setdefault(
        "enqueued",
        sum(health.get(name, 0) for name in ("queue_depth", "dropped_queue", "exported")),
    )
    header = encode_header(
        orjson.dumps,
        profilis_version="2.0.0",
        service=service,
        pid=pid,
        seq=seq,
        health=WireHealth(**health),
    )
    return join_datagram(header, orjson.dumps(events if events is not None else []))
