"""Processes of one bench/app run: start and stop them, wait for their port, and read the CPU
time (utime + stime from /proc) of a process and all its descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["children", "cpu_seconds", "free_port", "running", "stop", "wait_for_port", "workers"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Return once something accepts on ``port``; raise if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        each = queue.pop()
        found.append(each)
        queue += children(each)
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (a server's workers), from every thread's list."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def workers(server_pid: int) -> list[int]:
    """A server's worker processes: its children but multiprocessing's resource tracker
    (uvicorn starts one beside its workers)."""
    found = []
    for pid in children(server_pid):
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of each pid and its live descendants (all threads), in seconds."""
    ticks = 0
    for pid in {each for root in pids for each in _descendants(root)}:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _TICKS_PER_S


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM the master, which stops its workers gracefully (exporters flush), then SIGKILL
    whatever is left of the process group. (SIGTERM to the whole group makes uvicorn's workers
    see two signals, and its second one skips the shutdown: their last spans were lost.)"""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind by a master that died


@contextlib.contextmanager
def running(
    argv: Sequence[str], env: dict[str, str], cwd: Path, log: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` in its own session (stopped as a group), logging to ``log``, ready on ``port``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, proc)
            yield proc
        finally:
            stop(proc)
