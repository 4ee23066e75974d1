"""DatagramTransport: a non-blocking datagram socket to the sidecar that reopens itself.

The one seam between ``CollectorExporter`` and the operating system. ``send`` never blocks
and never raises: it answers whether the datagram left. A full buffer keeps the socket; any
other failure (no socket file, sidecar gone or restarted) closes it, and the next ``send``
reopens it, but at most once per ``reconnect_interval_s``, so a dead sidecar costs one
failed ``connect`` per interval rather than one per batch.
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

__all__ = ["DatagramTransport"]

log = logging.getLogger("profilis.exporters.collector")

#: The sidecar is there but behind (or the datagram is too big for this socket): keep the
#: socket and drop only this datagram.
_KEEP_SOCKET: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EMSGSIZE})


class DatagramTransport:
    """Sends datagrams to ``address`` (Unix or UDP); ``send`` is True when one left."""

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

    def send(self, data: bytes) -> bool:
        sock = self._sock or self._connect()
        if sock is None:
            return False
        try:
            sock.send(data)
        except OSError as exc:
            self.last_error = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            if exc.errno not in _KEEP_SOCKET:
                self.close()
            return False
        return True

    def wait_writable(self, timeout_s: float) -> bool:
        """Wait until the socket has room (or ``timeout_s``); False when there is no socket."""
        sock = self._sock
        if sock is None:
            return False
        select.select([], [sock], [], max(0.0, timeout_s))
        return True

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
