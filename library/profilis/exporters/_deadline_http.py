"""HTTP answers read within one time budget, for exporters built on ``http.client``.

http.client applies a socket's timeout to each read, so a receiver that sends a byte just
before every timeout holds a request for as long as it likes. ``BudgetedResponse`` (a
connection's ``response_class``) turns the timeout in force when the answer starts into a
deadline for all of it. Used by ``otlp``.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from typing import Any

__all__ = ["BudgetedResponse", "DeadlineReader", "seconds_left"]


class BudgetedResponse(http.client.HTTPResponse):
    """An answer read within one budget: the socket's timeout when reading starts.

    http.client reads the status line, headers and body through a buffered file whose every
    read gets the socket's timeout afresh, so a receiver sending a byte just before each
    timeout would hold the request for ever. Here each read gets only what is left.
    """

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        deadline = time.monotonic() + (sock.gettimeout() or 0.0)
        # The socket's own reader, unread so far, goes inside: it keeps the socket open when
        # the connection closes first (an answer with "Connection: close").
        self.fp = io.BufferedReader(DeadlineReader(self.fp.detach(), sock, deadline))


class DeadlineReader(io.RawIOBase):
    """A socket's reader that raises ``TimeoutError`` once ``deadline`` has passed."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's time budget ran out while reading the answer")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        super().close()
        self._raw.close()


def seconds_left(deadline: float) -> float:
    """What is left of a budget, as a socket timeout (never 0: that would mean non-blocking)."""
    return max(0.001, deadline - time.monotonic())
