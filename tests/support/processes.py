"""Real processes for tests: start a server, wait until it answers, always stop it.

Every server binds to 127.0.0.1 on a free port, every wait has a deadline, and the process
group is killed on the way out, so a failing test never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RunningProcess", "free_port", "run_process", "stop_group", "wait_for_port"]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range.

    The kernel hands out ephemeral ports to every outgoing connection on the machine; a port
    taken from that range (``bind(0)``) can be taken again by some client's connect() before
    the test's server binds it ("address already in use" on a busy machine). Ports below
    the range are only ever taken by an explicit bind.
    """
    low, _ = _ephemeral_range()
    lowest = 10000 if low > 11000 else 1024
    for _ in range(100):
        port = random.randrange(lowest, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass
class RunningProcess:
    """A started process; ``output()`` returns what it printed so far (stdout+stderr)."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process group, SIGKILL after ``timeout``; return the exit code."""
        returncode = stop_group(self.proc, timeout)
        # Workers of a server may outlive their master by a moment: clean the group too.
        self.signal(signal.SIGKILL)
        return returncode


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL
    it after ``timeout``; return the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


@contextlib.contextmanager
def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    port: int | None = None,
    ready_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[RunningProcess]:
    """Run ``argv`` in its own process group; wait for ``port`` if given; stop on exit.

    On failure inside the block, the process output is attached to the exception message
    so a broken server explains itself.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log = tempfile.NamedTemporaryFile(prefix="proc-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        list(argv),
        env=full_env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    running = RunningProcess(proc, Path(log.name), port)
    try:
        if port is not None:
            wait_for_port(port, timeout=ready_timeout, proc=proc)
        yield running
    except BaseException as exc:
        running.stop(stop_timeout)
        note = f"--- output of {argv[0]} ---\n{running.output()[-4000:]}"
        if hasattr(exc, "add_note"):  # Python 3.11+; on 3.10 the output goes to stderr
            exc.add_note(note)
        else:
            print(note, file=sys.stderr)
        raise
    finally:
        running.stop(stop_timeout)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)
