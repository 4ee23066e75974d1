"""The mutating webhook's HTTPS server: POST /mutate-pods, certificates reloaded from files.

It reads the body, asks ``profilis_operator.admission.Admission`` for the answer, counts it
(``profilis_operator.health.OperatorMetrics``) and hands the Event to the recorder. Nothing
it receives can make it answer anything but an AdmissionReview with ``allowed: true`` (or a
404/405 for a wrong path or method). The decision runs right on the event loop: it is a
dictionary lookup for a pod seen before and about 0.25 ms for a new template, cheaper than a
hop to a thread. kopf's own ``@kopf.on.mutate`` server, given the same ``inject``, measured
a p99 about 40 times ours at 20 concurrent requests (``make bench``, row ``kopf_webhook``),
far over the 5 ms target; kopf still runs this server (``profilis_operator.handlers`` starts
and stops it).

Anyone who can reach the port is a client, so what one can hold is bounded
(``WebhookLimits``): open connections (a TLS connection costs about 250 kB before it has
sent a byte), the time to finish the handshake, to send a request and to sit idle, and the
size of a review processed (a larger one is admitted unchanged, counted).

TLS: the certificate and key come from files (a mounted Secret, or ``profilis_operator.certs``
for ``--self-signed``). The files are checked every ``reload_interval_s``; a change is loaded
into a fresh ``SSLContext``, which new handshakes are switched to only once the pair loaded
(the listening context's SNI callback picks it). Open connections finish undisturbed; a
half-written pair (a new certificate, the old key) leaves the old pair serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
from aiohttp import web

from profilis_operator.admission import Admission, EventSpec, oversized
from profilis_operator.health import OperatorMetrics

__all__ = ["WEBHOOK_PATH", "CertificateFiles", "WebhookLimits", "WebhookServer"]

log = logging.getLogger("profilis.operator.webhook")

#: The path the MutatingWebhookConfiguration points at (DESIGN.md).
WEBHOOK_PATH: Final = "/mutate-pods"
#: Bytes of an oversized review read to find its uid (the API server writes it first).
_UID_PREFIX_BYTES: Final = 4096
_UID_PATTERN: Final = re.compile(rb'"request"\s*:\s*\{\s*"uid"\s*:\s*"([0-9A-Za-z._:-]{1,128})"')
#: Refused connections are logged at most once per this many seconds, with a count.
_REFUSAL_LOG_INTERVAL_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class WebhookLimits:
    """What clients of the webhook can hold; the defaults fit the chart's 256Mi operator."""

    #: Open connections, handshakes in progress included (each ~250 kB of TLS buffers);
    #: a connection beyond them is closed at once and counted. API servers keep a few each.
    max_connections: int = 128
    #: Seconds a client has to finish the TLS handshake.
    handshake_timeout_s: float = 5.0
    #: Seconds a connection may stay open without a whole request in: before its first
    #: request, between requests, and again for reading a request's body.
    idle_timeout_s: float = 30.0
    #: The largest AdmissionReview (bytes) processed. Any pod etcd can store (1.5 MiB by
    #: default) fits, with room for the envelope; a larger review is admitted unchanged.
    max_review_bytes: int = 2 << 20


class CertificateFiles:
    """A serving certificate and key on disk, swapped into new handshakes when they change.

    ``context`` is the listening context: it holds no certificate itself, its SNI callback
    (run for every handshake, SNI or not) hands the handshake to the last pair that loaded.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.sni_callback = self._select
        self._current: ssl.SSLContext | None = None
        self._fingerprint = ""

    def load(self) -> bool:
        """Load the files if they changed since the last load; True if something was loaded.

        Raises ``OSError``/``ssl.SSLError`` on unreadable or mismatched files, and then the
        pair loaded before keeps serving.
        """
        digest = hashlib.sha256()
        for path in (self.cert_file, self.key_file):
            digest.update(path.read_bytes())
        fingerprint = digest.hexdigest()
        if fingerprint == self._fingerprint:
            return False
        fresh = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        fresh.load_cert_chain(self.cert_file, self.key_file)  # raises before anything changed
        self._current = fresh
        self._fingerprint = fingerprint
        return True

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        if self._current is not None:
            connection.context = self._current


class WebhookServer:
    """Serves ``admission`` over HTTPS on ``host:port``, within ``limits``."""

    def __init__(
        self,
        admission: Admission,
        certificates: CertificateFiles,
        metrics: OperatorMetrics,
        *,
        host: str = "0.0.0.0",
        port: int = 9443,
        record_event: Callable[[EventSpec], None] | None = None,
        reload_interval_s: float = 10.0,
        limits: WebhookLimits | None = None,
    ) -> None:
        self._admission = admission
        self._certificates = certificates
        self._metrics = metrics
        self._host = host
        self._port = port
        self._record_event = record_event
        self._reload_interval_s = reload_interval_s
        self._limits = limits or WebhookLimits()
        self._runner: web.AppRunner | None = None
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshakes = 0
        self._refused_since_log = 0
        self._refusal_logged_at = -_REFUSAL_LOG_INTERVAL_S

    async def start(self) -> None:
        self._certificates.load()  # a missing or bad certificate stops start-up, loudly
        self._metrics.tls_reloads.inc()
        app = web.Application(client_max_size=self._limits.max_review_bytes)
        app.router.add_post(WEBHOOK_PATH, self._handle)
        # aiohttp's keep-alive timer runs from the connection's start: it also closes a
        # connection that never completes a request (headers trickled a byte at a time).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self._limits.idle_timeout_s,
        )
        await self._runner.setup()
        listener = socket.create_server(
            (self._host, self._port), reuse_port=False, backlog=self._limits.max_connections
        )
        listener.setblocking(False)
        self._listener = listener
        self._metrics.webhook_connections.set_function(lambda: self.open_connections)
        self._spawn(self._accept_forever(listener), "profilis-webhook-accept")
        self._spawn(self._watch_certificates(), "profilis-tls")
        log.info("webhook listening on https://%s:%d%s", self._host, self._port, WEBHOOK_PATH)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()  # closes the open connections
            self._runner = None

    @property
    def open_connections(self) -> int:
        """Connections held: handshakes in progress and established ones."""
        server = self._runner.server if self._runner is not None else None
        return self._handshakes + (len(server.connections) if server is not None else 0)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_forever(self, listener: socket.socket) -> None:
        # Our own accept loop rather than loop.create_server: it can count a connection
        # before its TLS buffers exist, and refuse it.
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and the like: back off rather than spin
                log.warning("webhook cannot accept connections: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if self.open_connections >= self._limits.max_connections:
                connection.close()
                self._refuse("limit")
                continue
            self._handshakes += 1
            self._spawn(self._serve(connection), "profilis-webhook-handshake")

    async def _serve(self, connection: socket.socket) -> None:
        assert self._runner is not None and self._runner.server is not None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                self._runner.server,
                connection,
                ssl=self._certificates.context,
                ssl_handshake_timeout=self._limits.handshake_timeout_s,
            )
        except (OSError, asyncio.TimeoutError):  # ssl.SSLError is an OSError
            connection.close()
            self._refuse("handshake")
        finally:
            self._handshakes -= 1  # an established one is counted by aiohttp's server now

    def _refuse(self, reason: str) -> None:
        self._metrics.webhook_connections_refused.labels(reason).inc()
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "webhook refused %d connection(s) in the last %.0f s (latest: %s; at most %d "
                "open, %.0f s to finish the TLS handshake)",
                self._refused_since_log,
                min(now - self._refusal_logged_at, _REFUSAL_LOG_INTERVAL_S),
                reason,
                self._limits.max_connections,
                self._limits.handshake_timeout_s,
            )
            self._refused_since_log = 0
            self._refusal_logged_at = now

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            raw, whole = await asyncio.wait_for(self._read(request), self._limits.idle_timeout_s)
        except asyncio.TimeoutError:
            self._refuse("timeout")
            raise web.HTTPRequestTimeout() from None
        if whole:
            outcome = self._admission.review(raw)
        else:
            # Too large to process: admitted unchanged, answered with its uid when it can be
            # found, and the connection closed rather than the rest of the body read.
            found = _UID_PATTERN.search(raw)
            outcome = oversized(found.group(1).decode("ascii") if found else "")
        self._metrics.observe_admission(outcome, time.perf_counter() - started)
        if outcome.event is not None and self._record_event is not None:
            self._record_event(outcome.event)
        response = web.Response(
            body=orjson.dumps(outcome.response), content_type="application/json"
        )
        if not whole:
            response.force_close()
        return response

    async def _read(self, request: web.Request) -> tuple[bytes, bool]:
        """(the body, True), or (its first bytes, False) once it is, or says it will be, more
        than ``max_review_bytes``."""
        limit = self._limits.max_review_bytes
        declared = request.content_length
        oversized = declared is not None and declared > limit
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit or (oversized and len(body) >= _UID_PREFIX_BYTES):
                oversized = True
                break
        if oversized:
            return bytes(body[:_UID_PREFIX_BYTES]), False
        return bytes(body), True

    async def _watch_certificates(self) -> None:
        while True:
            await asyncio.sleep(self._reload_interval_s)
            try:
                if self._certificates.load():
                    self._metrics.tls_reloads.inc()
                    log.info("serving certificate reloaded from %s", self._certificates.cert_file)
            except (OSError, ssl.SSLError) as exc:
                # Mid-rotation or a broken Secret: the pair loaded before still serves.
                self._metrics.errors.labels("tls").inc()
                log.warning(
                    "certificate files unusable, still serving the pair loaded before: %s", exc
                )
