"""Listening sockets and the receive thread: each datagram goes to ``IngestState.ingest``.

The Unix socket is bound under a temporary name, given its mode, then renamed over the
final path, so it never exists with looser permissions and a stale file from a dead sidecar
is replaced atomically; a live sidecar on the path, or a file that is not a socket, is an
error instead. One thread reads every socket. A Unix datagram socket queues only
``net.unix.max_dgram_qlen`` datagrams (often 10, a couple of milliseconds of traffic), so
between two datagrams it processes, the thread moves whatever the kernel holds into a
bounded backlog of its own: bursts wait there instead of being refused to the agents. Past
``backlog_bytes`` it stops taking, and agents count what the kernel refuses. ``stop`` shuts
the sockets for reading (senders get an error at once, counted by them), then processes what
was already queued.

An ingest-rate limit (``ingest_rate_limit`` datagrams a second, 0: none) makes the thread read
no faster than that from the sockets (a token bucket holding one second's worth, at least
one): the kernel's queue fills, then the agents keep their batches and their queues fill,
while /metrics (another thread) keeps answering. It exists for demos and for testing the
queue alerts; a production sidecar runs unlimited. The drain at ``stop`` is not limited.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from profilis.config import CollectorAddress
from profilis_sidecar.settings import SidecarError

__all__ = ["Receiver", "TokenBucket", "bind_udp", "bind_unix"]

log = logging.getLogger("profilis.sidecar")

#: Bytes a backlog entry is counted for beyond its payload, so that a flood of empty
#: datagrams is bounded too.
_ENTRY_OVERHEAD: Final = 64
#: How often the loop wakes when idle, to run housekeeping (worker expiry) and see a stop.
_IDLE_WAKE_S: Final = 0.25
#: Receive buffer asked for UDP (the kernel caps it at net.core.rmem_max); Unix datagram
#: sockets queue on the sender's buffer instead.
_UDP_RCVBUF: Final = 8 << 20


def bind_unix(path: str, mode: int) -> socket.socket:
    """A Unix datagram socket bound at ``path`` with permission bits ``mode``."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(existing.st_mode):
            raise SidecarError(f"{path} exists and is not a socket; refusing to replace it")
        if _answers(path):
            raise SidecarError(f"another collector is already listening on {path}")
    temporary = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        # Bound under a private name, its mode set, then moved into place: no moment where
        # the final path is missing or has the umask's permissions.
        sock.bind(temporary)
        os.chmod(temporary, mode)
        os.rename(temporary, path)
        sock.setblocking(False)
    except OSError:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return sock


def _answers(path: str) -> bool:
    """Whether a live process holds the socket at ``path`` (a stale file refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket on ``host:port``; a non-loopback host is allowed but warned about."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with contextlib.suppress(ValueError):
        if not ipaddress.ip_address(address[0]).is_loopback:
            log.warning("profilis-sidecar: UDP on %s accepts datagrams from the network", host)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class TokenBucket:
    """``rate`` tokens a second, holding at most ``max(1, rate)``; starts full.

    ``clock`` (seconds, monotonic) is injectable for tests.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("a token bucket needs a positive rate")
        self._rate = float(rate)
        self._capacity = max(1.0, self._rate)
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._updated:
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def ready(self) -> bool:
        """Whether a token is there to spend."""
        self._refill()
        return self._tokens >= 1.0

    def spend(self) -> None:
        """Take one token (call after ``ready`` said yes)."""
        self._tokens -= 1.0

    def wait_s(self) -> float:
        """Seconds until the next token (0 when one is there)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self._rate)


class Receiver:
    """Owns the listening sockets and the thread that reads them.

    ``ingest`` gets each datagram, in arrival order per socket; ``housekeeping`` runs about
    every ``housekeeping_interval_s`` on the same thread. ``backlog_bytes`` bounds the
    datagrams read from the kernel and not yet ingested. ``ingest_rate_limit`` (datagrams a
    second, 0: unlimited) bounds how fast they are read; ``clock`` times it.
    """

    def __init__(
        self,
        addresses: Sequence[CollectorAddress],
        ingest: Callable[[bytes], None],
        *,
        max_datagram_bytes: int,
        socket_mode: int,
        backlog_bytes: int = 16 << 20,
        housekeeping: Callable[[], object] = lambda: None,
        housekeeping_interval_s: float = 1.0,
        ingest_rate_limit: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._addresses = tuple(addresses)
        self._ingest = ingest
        self._max_bytes = max_datagram_bytes
        self._socket_mode = socket_mode
        self._backlog: deque[bytes] = deque()
        self._backlog_cap = backlog_bytes
        self._backlog_bytes = 0
        self._housekeeping = housekeeping
        self._housekeeping_interval_s = housekeeping_interval_s
        #: None: unlimited. Gates reads from the sockets, not ingestion from the backlog.
        self._bucket = (
            TokenBucket(ingest_rate_limit, clock=clock) if ingest_rate_limit > 0 else None
        )
        self._sockets: list[tuple[CollectorAddress, socket.socket]] = []
        # Inode of each socket file we created: removed at stop only if still ours.
        self._inodes: dict[str, int] = {}
        self._stop = threading.Event()
        # Set before the sockets are shut down, so an empty read is known for what it is.
        self._closing = False
        self._drain_deadline = 0.0
        self._thread: threading.Thread | None = None
        #: Exceptions from ``ingest`` (a bug: input errors are counted there, not raised).
        self.internal_errors = 0

    @property
    def backlog_bytes(self) -> int:
        """Bytes read from the sockets and not yet ingested."""
        return self._backlog_bytes

    @property
    def bound(self) -> bool:
        return bool(self._sockets) and not self._closing

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind every address (all or none), then start reading."""
        try:
            for address in self._addresses:
                if address.scheme == "unix":
                    path = str(address.path)
                    sock = bind_unix(path, self._socket_mode)
                    self._inodes[path] = os.stat(path).st_ino
                else:
                    sock = bind_udp(str(address.host), int(address.port or 0))
                self._sockets.append((address, sock))
        except (OSError, SidecarError) as exc:
            self._close_sockets()
            for path in self._inodes:  # no socket file left behind by a failed start
                self._unlink_if_ours(path)
            if isinstance(exc, SidecarError):
                raise
            raise SidecarError(f"cannot listen on {address}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="profilis-sidecar-ingest")
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop accepting, read what is already queued (within ``timeout_s``), close."""
        self._drain_deadline = time.monotonic() + timeout_s
        self._closing = True
        for address, sock in self._sockets:
            with contextlib.suppress(OSError):
                # Senders now get an error (counted by them) instead of queueing more.
                sock.shutdown(socket.SHUT_RD)
            if address.scheme == "unix":
                self._unlink_if_ours(str(address.path))
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 1.0)
        self._close_sockets()

    def _unlink_if_ours(self, path: str) -> None:
        # A newer sidecar may have taken the path over; its socket must stay.
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == self._inodes.get(path):
                os.unlink(path)

    def _close_sockets(self) -> None:
        for _, sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        backlog = self._backlog
        sockets = [sock for _, sock in self._sockets]
        selector = selectors.DefaultSelector()
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        next_housekeeping = time.monotonic() + self._housekeeping_interval_s
        try:
            while not self._stop.is_set():
                bucket = self._bucket
                if not backlog:
                    if bucket is None or bucket.ready():
                        selector.select(_IDLE_WAKE_S)  # idle: sleep until a datagram comes
                    else:
                        # Rate-limited: the sockets may be readable, but no read is allowed
                        # before the next token (the kernel's queue, then the agents', fill).
                        self._stop.wait(min(bucket.wait_s(), _IDLE_WAKE_S))
                # Empty the kernel's short queues first (a few microseconds per datagram),
                # then do one datagram's real work (about a hundred).
                for sock in sockets:
                    self._take(sock)
                if backlog:
                    self._ingest_next()
                now = time.monotonic()
                if now >= next_housekeeping:
                    next_housekeeping = now + self._housekeeping_interval_s
                    self._safely(self._housekeeping)
            # Stopping: the sockets are shut for reading; ingest what they and the backlog
            # still hold, within the drain deadline.
            self._bucket = None  # what is left is drained at full speed
            while time.monotonic() < self._drain_deadline:
                for sock in sockets:
                    self._take(sock)
                if not backlog:
                    break
                self._ingest_next()
            if backlog:
                log.warning(
                    "profilis-sidecar: %d datagrams still queued at the drain deadline were "
                    "not counted",
                    len(backlog),
                )
        finally:
            selector.close()

    def _take(self, sock: socket.socket) -> None:
        """Move the datagrams the kernel holds for ``sock`` to the backlog, up to its cap.

        An empty backlog always takes one, so a cap of 0 means "one at a time". Under an
        ingest-rate limit each datagram read spends a token; without one, nothing is read.
        """
        backlog = self._backlog
        bucket = self._bucket
        while not backlog or self._backlog_bytes < self._backlog_cap:
            if bucket is not None and not bucket.ready():
                return
            try:
                # One byte more than the limit: a longer datagram shows as too long.
                data = sock.recv(self._max_bytes + 1)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    log.warning("profilis-sidecar: receive failed: %s", exc)
                    return
                continue
            if not data and self._closing:
                return  # shut down for reading and empty
            if bucket is not None:
                bucket.spend()
            backlog.append(data)
            self._backlog_bytes += len(data) + _ENTRY_OVERHEAD

    def _ingest_next(self) -> None:
        data = self._backlog.popleft()
        self._backlog_bytes -= len(data) + _ENTRY_OVERHEAD
        self._safely(self._ingest, data)

    def _safely(self, call: Callable[..., object], *args: object) -> None:
        try:
            call(*args)
        except Exception:
            self.internal_errors += 1
            if self.internal_errors == 1 or self.internal_errors % 10_000 == 0:
                log.exception("profilis-sidecar: internal error (%d so far)", self.internal_errors)
