"""DatagramTransport: a non-blocking datagram socket to the sidecar that reopens itself.

The one seam between ``CollectorExporter`` and the operating system. ``send`` never blocks
and never raises: it answers ``SENT``, ``FULL`` (the buffer is full: the sidecar is there but
behind or paused; the caller keeps the datagram and retries after ``wait_writable``),
``REFUSED`` (this datagram can never fit: EMSGSIZE) or ``FAILED`` (no socket file, sidecar
gone or restarted). Only ``FAILED`` closes the socket; the next ``send`` reopens it, at most
once per ``reconnect_interval_s``, so a dead sidecar costs one failed ``connect`` per interval.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import time
from typing import Any, Final

from profilis.config import CollectorAddress

__all__ = ["FAILED", "FULL", "REFUSED", "SENT", "DatagramTransport"]

log = logging.getLogger("profilis.exporters.collector")

#: What ``send`` answers (plain ints: this is the writer's per-datagram path).
SENT: Final = 0
FULL: Final = 1
REFUSED: Final = 2
FAILED: Final = 3

#: The sidecar is there but behind: keep the socket and the datagram, and retry.
_FULL_ERRNOS: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})


class DatagramTransport:
    """Sends datagrams to ``address`` (Unix or UDP); ``send`` says whether one left."""

    def __init__(
        self,
        address: CollectorAddress,
        *,
        reconnect_interval_s: float,
        send_buffer_bytes: int,
    ) -> None:
        self.address = address
        self._reconnect_interval_s = reconnect_interval_s
        self._send_buffer_bytes = send_buffer_bytes
        self._sock: socket.socket | None = None
        self._next_connect = 0.0
        #: Successful (re)connections.
        self.connects = 0
        #: errno name (or exception type) of the last failure, for stats and logs.
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def send(self, data: bytes) -> int:
        """``SENT``, ``FULL``, ``REFUSED`` or ``FAILED`` (see the module docstring)."""
        sock = self._sock or self._connect()
        if sock is None:
            return FAILED
        try:
            sock.send(data)
        except OSError as exc:
            self.last_error = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            if exc.errno in _FULL_ERRNOS:
                return FULL
            if exc.errno == errno.EMSGSIZE:
                return REFUSED
            self.close()
            return FAILED
        return SENT

    def wait_writable(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for room; True when the socket reports room."""
        sock = self._sock
        if sock is None:
            return False
        try:
            _, writable, _ = select.select([], [sock], [], max(0.0, timeout_s))
        except (OSError, ValueError):  # closed meanwhile
            return False
        return bool(writable)

    def allow_reconnect_now(self) -> None:
        """Let the next ``send`` connect whatever the pause (the final send at close)."""
        self._next_connect = 0.0

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _connect(self) -> socket.socket | None:
        now = time.monotonic()
        if now < self._next_connect:
            return None
        self._next_connect = now + self._reconnect_interval_s
        try:
            sock = self._open()
        except OSError as exc:
            self.last_error = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            return None
        self._sock = sock
        self.connects += 1
        if self.connects > 1:
            log.debug("profilis: collector exporter reconnected to %s", self.address)
        return sock

    def _open(self) -> socket.socket:
        address = self.address
        if address.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            target: str | tuple[Any, ...] = str(address.path)
        else:
            # Resolved here, on the writer thread, once per connection: hosts-file names and
            # IP addresses answer at once.
            info = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_DGRAM)
            family, _, _, _, target = info[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self._send_buffer_bytes:
                with contextlib.suppress(OSError):  # a cap lower than asked is fine
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        return sock
