"""The sidecar's HTTP endpoints on the metrics port (``profilis-http``, 9464 by default).

``/metrics``: the registry, in the exposition format the scraper asks for (prometheus_client's
encoder, never hand-written text). ``/healthz``: the process answers. ``/readyz``: the sockets
are bound and the forwarding exporters are healthy (503 with the reasons otherwise).
``/_profilis/``: the pod dashboard (``profilis_sidecar.ui``), with ``/_profilis/status.json``
for the sidecar's own status, behind the dashboard's token when one is set. GET and HEAD.

Anything in the cluster can connect to this port, so it is bounded like an edge server: one
asyncio loop thread holds every connection (an idle one costs a few kB, never a thread), a
request head must arrive within ``read_timeout_s``, a kept-alive connection is closed after
``idle_timeout_s``, and past ``max_connections`` the oldest idle connection (else the oldest
stuck writing, else the oldest) is closed to make room, never the newcomer: a flood of
half-open sockets cannot lock a scraper or the probes out. Probes are answered on the loop;
renders run on a few worker threads. Bad clients are counted; one log line per 10 s at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import logging
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from prometheus_client import exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from profilis.ui import TokenCheck, UiResponse

__all__ = ["HttpLimits", "HttpStats", "StatusServer"]

log = logging.getLogger("profilis.sidecar.http")

HeaderGetter = Callable[[str], "str | None"]
#: ``(method, target, header getter) -> response``, or None when the target is not its own.
DashboardRoute = Callable[[str, str, HeaderGetter], "UiResponse | None"]
_JSON: Final = "application/json"
_TEXT: Final = "text/plain; charset=utf-8"
#: Threads rendering /metrics, status.json and the dashboard; probes never wait for them.
_WORKERS: Final = 4
#: Largest request head (request line and headers) read; a longer one is answered 431.
_MAX_HEAD_BYTES: Final = 16_384
#: At most one line about bad clients per this many seconds (the rest are counted in it).
_BAD_CLIENT_LOG_INTERVAL_S: Final = 10.0
#: Why the server closed a connection on a client (the ``reason`` label).
_CLOSE_REASONS: Final = (
    "evicted",  # the cap was reached and it had waited longest
    "timeout",  # its request head did not arrive within the read timeout
    "idle",  # kept alive, no next request within the idle timeout
    "incomplete",  # closed or reset in the middle of a request head
    "too_large",  # a request head over 16 KiB
    "malformed",  # not an HTTP/1.x request
    "write_timeout",  # it did not read its response within the write timeout
)
_STATUS_PATHS: Final = frozenset({"/_profilis/status.json"})
_UNAUTHORIZED: Final = (
    401,
    (("WWW-Authenticate", 'Bearer realm="profilis"'), ("Cache-Control", "no-store")),
    b"a valid Profilis dashboard token is required\n",
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may hold of the server (``SidecarSettings.http_*``)."""

    # Open connections at most; past it the longest-idle one is closed for the newcomer.
    max_connections: int = 64
    # Seconds a new request's head (request line and headers) may take to arrive.
    read_timeout_s: float = 10.0
    # Seconds a kept-alive connection may wait for its next request.
    idle_timeout_s: float = 90.0
    # Seconds a response may take to be written (a slow reader of a large /metrics).
    write_timeout_s: float = 30.0


class HttpStats(Collector):
    """Connection counters of the metrics port, exposed on /metrics."""

    def __init__(self) -> None:
        self.open_connections = 0
        #: Connections closed by the server, by reason; every reason present from the start
        #: (a series at 0 is what rate() and alerts need).
        self.closed: Counter[str] = Counter(dict.fromkeys(_CLOSE_REASONS, 0))

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "profilis_sidecar_http_connections",
            "Open connections to the sidecar's metrics port.",
        )
        gauge.add_metric([], self.open_connections)
        yield gauge
        counter = CounterMetricFamily(
            "profilis_sidecar_http_connections_closed",
            "Connections the metrics port closed on a client, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(dict(self.closed).items()):
            counter.add_metric([reason], count)
        yield counter


class StatusServer:
    """Serves the endpoints on ``host:port`` from a background event-loop thread.

    ``status`` None turns ``/_profilis`` off entirely (404); ``token`` guards status.json
    as the dashboard's own check guards the page.
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        status: Callable[[], Mapping[str, object]] | None,
        readiness: Callable[[], list[str]],
        dashboard: DashboardRoute | None = None,
        token: str | None = None,
        limits: HttpLimits | None = None,
        stats: HttpStats | None = None,
    ) -> None:
        self._registry = registry
        self._status = status
        self._readiness = readiness
        self._dashboard = dashboard
        self._check = None if token is None else TokenCheck(token)
        self._limits = limits or HttpLimits()
        self.stats = stats or HttpStats()
        # Bound here, so a taken port fails the caller's start() at once. SO_REUSEADDR (set
        # by create_server): a restarted sidecar must be able to bind its port again at once.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=128)
        self._socket.setblocking(False)
        self._loop = asyncio.new_event_loop()
        self._workers = ThreadPoolExecutor(_WORKERS, thread_name_prefix="profilis-sidecar-render")
        self._stopped: asyncio.Event | None = None
        # The eviction order, each oldest first: connections waiting for a request head,
        # then those stuck writing to a slow reader, then any (all open ones, by age).
        self._idle: OrderedDict[asyncio.StreamWriter, None] = OrderedDict()
        self._writing: OrderedDict[asyncio.StreamWriter, None] = OrderedDict()
        self._open: OrderedDict[asyncio.StreamWriter, None] = OrderedDict()
        self._bad = _BadClientLog(self.stats)
        self._thread = threading.Thread(target=self._run, name="profilis-sidecar-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()
        self._socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ loop thread
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._client, sock=self._socket, limit=_MAX_HEAD_BYTES)
        await self._stopped.wait()
        server.close()
        for writer in list(self._open):
            writer.transport.abort()
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        if len(self._open) >= self._limits.max_connections:
            # Never the newcomer: a scraper must get in however many sockets are held open.
            victims = self._idle or self._writing or self._open
            oldest = next(iter(victims))
            for table in (self._idle, self._writing, self._open):
                table.pop(oldest, None)
            self._bad.note(_peer(oldest), "evicted")
            oldest.transport.abort()
        self._open[writer] = None
        self.stats.open_connections = len(self._open)
        # drain() returns only once the response has left for the kernel: a slow reader
        # then holds a connection (until the write timeout), never unbounded memory.
        writer.transport.set_write_buffer_limits(high=0)
        try:
            await self._serve_connection(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass  # the client went away (or was evicted) mid-exchange: nothing to tell
        except (asyncio.TimeoutError, TimeoutError):
            self._bad.note(peer, "write_timeout")
        finally:
            for table in (self._idle, self._writing, self._open):
                table.pop(writer, None)
            self.stats.open_connections = len(self._open)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()
            else:
                writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        first = True
        while True:
            self._idle[writer] = None
            head = await self._read_head(reader, writer, peer, first=first)
            self._idle.pop(writer, None)
            if head is None:
                return
            first = False
            request = _parse(head)
            if isinstance(request, str):
                self._bad.note(peer, "malformed")
                await self._send(writer, "GET", 400, _TEXT, f"{request}\n".encode(), (), False)
                return
            method, target, headers, keep_alive = request
            if method not in ("GET", "HEAD"):
                allow = (("Allow", "GET, HEAD"),)
                await self._send(writer, method, 405, _TEXT, b"method not allowed\n", allow, False)
                return
            code, content_type, body, extra = await self._respond(method, target, headers.get)
            if writer not in self._open:
                return  # evicted while its response was rendered
            self._writing[writer] = None
            await self._send(writer, method, code, content_type, body, extra, keep_alive)
            self._writing.pop(writer, None)
            if not keep_alive:
                return

    async def _read_head(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        *,
        first: bool,
    ) -> bytes | None:
        """The next request head; None when the connection is to be closed."""
        limits = self._limits
        loop = self._loop
        # A new connection has read_timeout_s for its whole first head; a kept-alive one
        # waits idle_timeout_s for the next request to start, then read_timeout_s for it.
        deadline = loop.time() + limits.read_timeout_s
        reason = "timeout"
        try:
            if not first:
                reason = "idle"
                start = await asyncio.wait_for(reader.read(1), limits.idle_timeout_s)
                deadline = loop.time() + limits.read_timeout_s
            else:
                start = await asyncio.wait_for(reader.read(1), limits.read_timeout_s)
            if not start:
                return None  # closed between requests, or a TCP probe: not a bad client
            reason = "timeout"
            rest = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), max(0.0, deadline - loop.time())
            )
        except (asyncio.TimeoutError, TimeoutError):
            pass
        except asyncio.LimitOverrunError:
            reason = "too_large"
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            reason = "incomplete"
        else:
            return start + rest
        if writer in self._idle:  # an evicted connection was counted when evicted
            self._bad.note(peer, reason)
        return None

    async def _respond(
        self, method: str, target: str, header: HeaderGetter
    ) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return 200, _TEXT, b"ok\n", ()
        if path == "/readyz":
            problems = self._readiness()
            body = json.dumps({"ready": not problems, "problems": problems}).encode()
            return (503 if problems else 200), _JSON, body, ()
        # Renders may take a while on a large registry: off the loop, on a bounded pool.
        return await self._loop.run_in_executor(
            self._workers, self._render, method, target, path, header
        )

    def _render(
        self, method: str, target: str, path: str, header: HeaderGetter
    ) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
        """Worker thread: /metrics, status.json and the dashboard."""
        if path == "/metrics":
            encoder, content_type = exposition.choose_encoder(header("Accept") or "")
            return 200, content_type, encoder(self._registry), ()
        if self._status is not None and (
            path in _STATUS_PATHS or (self._dashboard is None and path == "/_profilis")
        ):
            if self._check is not None and not self._check.allows(header, _query(target)):
                code, extra, body = _UNAUTHORIZED
                return code, _TEXT, body, extra
            body = json.dumps(self._status(), indent=2).encode()
            return 200, _JSON, body, (("Cache-Control", "no-store"),)
        reply = None if self._dashboard is None else self._dashboard(method, target, header)
        if reply is None:
            return 404, _TEXT, b"not found\n", ()
        # The dashboard's own Content-Length is its body's even for HEAD: keep its headers.
        return reply.status, "", reply.body, reply.headers

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        code: int,
        content_type: str,
        body: bytes,
        extra: tuple[tuple[str, str], ...],
        keep_alive: bool,
    ) -> None:
        lines = [f"HTTP/1.1 {code} {http.client.responses.get(code, 'Unknown')}"]
        has_length = any(name.lower() == "content-length" for name, _ in extra)
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in extra)
        lines.append("Server: profilis-sidecar")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if method == "HEAD" else head + body)
        await asyncio.wait_for(writer.drain(), self._limits.write_timeout_s)


def _parse(head: bytes) -> tuple[str, str, http.client.HTTPMessage, bool] | str:
    """(method, target, headers, keep-alive) of a request head, or why it is malformed."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1]:
        return "malformed request line"
    method, target, version = parts
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException:
        return "malformed headers"
    if headers.get("Transfer-Encoding") or (headers.get("Content-Length") or "0").strip() != "0":
        # Nothing here takes a body: answer, then close rather than read it.
        return method, target, headers, False
    # HTTP/1.0 clients get one response per connection (no keep-alive negotiation).
    keep_alive = version == "HTTP/1.1" and "close" not in (headers.get("Connection") or "").lower()
    return method, target, headers, keep_alive


def _query(target: str) -> str:
    return target.partition("?")[2]


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class _BadClientLog:
    """Counts connections closed on bad clients; one log line per interval at most."""

    def __init__(self, stats: HttpStats, interval_s: float = _BAD_CLIENT_LOG_INTERVAL_S) -> None:
        self._stats = stats
        self._interval_s = interval_s
        self._next_s = 0.0
        self._since: Counter[str] = Counter()

    def note(self, peer: str, reason: str) -> None:
        self._stats.closed[reason] += 1
        self._since[reason] += 1
        now = time.monotonic()
        if now < self._next_s:
            return
        self._next_s = now + self._interval_s
        others = sum(self._since.values()) - 1
        more = ""
        if others:
            more = f" (and {others} more since the last line: {dict(self._since)})"
        with contextlib.suppress(Exception):  # logging must never take the server down
            log.warning("closed HTTP connection from %s: %s%s", peer, reason, more)
        self._since.clear()
