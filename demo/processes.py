"""Child processes of the demo, each in its own process group, always stopped as a group.

A server's workers (gunicorn's, the pod runner's containers) live in the group of the process
the demo started, so stopping the group leaves nothing behind, whatever the child does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoError", "Process", "free_port", "http_ok", "port_is_free", "wait_http"]


class DemoError(Exception):
    """The demo cannot go on; the message tells the user why and what to do."""


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port in TIME_WAIT after the last demo is free to use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there (stable URLs for users), else any free port."""
    if port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status < 400)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Process:
    """A started child: its own session (so Ctrl-C on the terminal reaches only the demo)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else {**os.environ, **env},
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name, popen, log_path)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL what is left after ``grace_s``."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(grace_s)
        # Grandchildren may outlive the leader by a moment: the group goes too.
        self._signal_group(signal.SIGKILL)


def wait_http(url: str, *, timeout_s: float, process: Process, what: str) -> None:
    """Until ``url`` answers 2xx/3xx; a DemoError with the process's last lines otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise DemoError(f"{what}: {process.name} exited early:\n{process.tail()}")
        if http_ok(url):
            return
        time.sleep(0.2)
    raise DemoError(f"{what}: {url} did not answer within {timeout_s:.0f} s:\n{process.tail()}")
