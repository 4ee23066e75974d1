"""OTLPExporter: events as OTLP/HTTP protobuf spans (``POST {endpoint}/v1/traces``).

A collector sink; the mapping to spans is ``_otlp_mapping``'s, reading an answer within
the request's budget ``_deadline_http``'s. Standard-library HTTP only.

It retries by itself and never raises into the collector. The retry policy needs what only
HTTP knows: which answers are worth retrying (connection errors, 429, 502, 503, 504) and which
are final (400, 401, 404, ...: resending cannot help), and the server's ``Retry-After``. So a
failed request's spans stay in a bounded retry buffer (``max_retry_buffer`` spans; the oldest
go first) and are resent, oldest first, by a later call once the backoff has expired. While it
runs, calls do no network I/O at all, and a call stops at the first request left unanswered.
``timeout_s`` is each request's whole budget (connect, TLS, send, the full answer), not a
per-read timeout a receiver trickling bytes could renew forever, so a dead or slow endpoint
holds the collector's writer for at most ``timeout_s`` now and then. As the collector always
sees success, each event is counted here, exactly once, when settled:
``received == exported + dropped + pending`` (``dropped_by_reason`` says why); ``export_health``
hands those counts to whoever reports on the collector (the sidecar's forwarder).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from profilis._validation import check_float, check_int
from profilis._version import __version__
from profilis.config import resolve_setting
from profilis.core._delivery import SinkHealth
from profilis.errors import ConfigError
from profilis.exporters._deadline_http import BudgetedResponse, seconds_left
from profilis.exporters._otlp_mapping import (
    ExportTraceServiceResponse,
    Span,
    encode_request,
    event_to_span,
)

__all__ = ["OTLPExporter"]

log = logging.getLogger("profilis.exporters.otlp")

#: Statuses worth a retry (OTLP/HTTP specification); every other failure is final.
RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Spans per request: the OpenTelemetry SDK's default export batch size.
MAX_SPANS_PER_REQUEST: Final = 512
#: While failing, a warning is logged at most this often.
FAILURE_LOG_INTERVAL_S: Final = 60.0
# What a connection the server closed while idle raises on reuse (not a timeout: that one
# already took the whole budget).
_CONNECTION_ERRORS: Final = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    http.client.RemoteDisconnected,
)
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110)


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivered: bool
    retryable: bool = False
    rejected_spans: int = 0
    retry_after_s: float | None = None
    reason: str = ""


class OTLPExporter:
    """Sends each batch as spans to an OTLP/HTTP receiver (an OpenTelemetry Collector, say).

    ``endpoint``: the receiver's base URL; ``/v1/traces`` is appended unless already there.
    ``timeout_s`` bounds each request, from connecting to the answer's last byte. Backoff
    doubles from ``retry_initial_backoff_s`` up to ``retry_max_backoff_s``, which also caps a
    server's ``Retry-After``.
    Counters: ``received``, ``exported``, ``dropped`` (``dropped_by_reason``: ``encode``,
    ``rejected``, ``buffer``, ``shutdown``), ``pending``, ``errors`` (failed requests),
    ``retries`` (requests made while recovering from a failure); ``retry_in_s`` tells
    how long the current backoff has left; ``failing`` is True from a failed request until
    one succeeds.
    """

    #: The sink's name in the collector's health and the export-error metric.
    name = "otlp"

    def __init__(
        self,
        endpoint: str = "http://localhost:4318",
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        service_name: str | None = None,
        max_retry_buffer: int = 2048,
        retry_initial_backoff_s: float = 1.0,
        retry_max_backoff_s: float = 30.0,
    ) -> None:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("endpoint", "an http:// or https:// URL", endpoint)
        self.endpoint = endpoint
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc.rpartition("@")[2]  # credentials never go on the wire here
        base = parts.path.rstrip("/")
        self._path = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
        self.timeout_s = check_float(
            "timeout_s", timeout_s, minimum=0.0, maximum=600.0, min_inclusive=False
        )
        service_name = resolve_setting("service_name", service_name)  # PROFILIS_SERVICE_NAME
        if not isinstance(service_name, str) or not service_name:
            raise ConfigError("service_name", "a non-empty string", service_name)
        self.service_name = service_name
        self.max_retry_buffer = check_int(
            "max_retry_buffer", max_retry_buffer, minimum=0, maximum=10_000_000
        )
        self._initial_backoff_s = check_float(
            "retry_initial_backoff_s",
            retry_initial_backoff_s,
            minimum=0.0,
            maximum=3600.0,
            min_inclusive=False,
        )
        self._max_backoff_s = check_float(
            "retry_max_backoff_s",
            retry_max_backoff_s,
            minimum=self._initial_backoff_s,
            maximum=3600.0,
        )
        self._headers = {"User-Agent": f"profilis/{__version__}", **_check_headers(headers)}
        self._headers["Content-Type"] = "application/x-protobuf"
        self._reset(os.getpid())

    def _reset(self, pid: int) -> None:
        """Empty buffer and zero counters: at start, and in a forked child (as the collector)."""
        self._pid = pid
        # The parent owns its buffered spans and its connection; a lock held at fork is stuck.
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._buffer: deque[Span] = deque()
        self._backoff_s = 0.0
        self._next_attempt = 0.0
        self._failing_since = 0  # consecutive failed requests worth a retry
        # Any failure, final ones (401, 404: every span refused) included, until a success.
        self._last_failed = False
        self._last_failure_log = 0.0
        self.received = 0
        self.exported = 0
        self.errors = 0
        self.retries = 0
        self.dropped_by_reason: dict[str, int] = {
            "encode": 0,
            "rejected": 0,
            "buffer": 0,
            "shutdown": 0,
        }

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    @property
    def pending(self) -> int:
        """Spans waiting in the retry buffer."""
        return len(self._buffer)

    @property
    def retry_in_s(self) -> float:
        """Seconds until the next attempt is allowed (0.0 when not backing off)."""
        return max(0.0, self._next_attempt - time.monotonic())

    @property
    def failing(self) -> bool:
        """True since a request failed (timeout, refused, an error status) until one succeeds."""
        return self._last_failed

    def export_health(self) -> SinkHealth:
        """This exporter's own account: the collector sees every call succeed (see above).

        Reads the counters without the lock, which a request holds for up to ``timeout_s``:
        a readiness probe asks this and must not wait behind a slow receiver.
        """
        return SinkHealth(
            name=self.name,
            delivered=self.exported,
            dropped=sum(self.dropped_by_reason.values()),
            errors=self.errors,
            pending=len(self._buffer),
            backing_off=self._last_failed,
        )

    # ------------------------------------------------------------------ sink contract
    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Queue the batch's spans, send what is due; never raises. ``[]`` only retries."""
        if self._pid != os.getpid():
            self._reset(os.getpid())
        spans = []
        for event in batch:
            # Out of schema: no span can say it (counted below as an encode drop).
            with contextlib.suppress(KeyError, TypeError, ValueError):
                spans.append(event_to_span(event))
        with self._lock:
            self.received += len(batch)
            self.dropped_by_reason["encode"] += len(batch) - len(spans)
            self._buffer.extend(spans)
            if time.monotonic() >= self._next_attempt:
                self._send_due()
            self._trim(self.max_retry_buffer, "buffer")

    def close(self) -> None:
        """Try once more, backoff or not, to send what is buffered; count the rest as dropped."""
        if self._pid != os.getpid():
            self._reset(os.getpid())
        with self._lock:
            self._send_due()
            self._trim(0, "shutdown")
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ sending
    def _send_due(self) -> None:
        """Send buffered spans, oldest first, until the buffer is empty or a request fails."""
        buffer = self._buffer
        while buffer:
            chunk = list(itertools.islice(buffer, MAX_SPANS_PER_REQUEST))
            if self._failing_since:
                self.retries += 1
            outcome = self._post(encode_request(chunk, self.service_name))
            if not outcome.delivered and outcome.retryable:
                self._failed(outcome)
                return
            for _ in chunk:
                buffer.popleft()
            if outcome.delivered:
                rejected = min(outcome.rejected_spans, len(chunk))
                self.exported += len(chunk) - rejected
                self.dropped_by_reason["rejected"] += rejected
                self._recovered()
            else:
                # A final answer (400, 401, 404...): the endpoint is up, those spans never will be.
                self.errors += 1
                self._last_failed = True
                self.dropped_by_reason["rejected"] += len(chunk)
                self._log_failure(outcome.reason)

    def _post(self, body: bytes) -> _Outcome:
        deadline = time.monotonic() + self.timeout_s
        reused = self._conn is not None
        try:
            response, data = self._request(body, deadline)
        except Exception as exc:  # OSError, HTTPException, or a surprise: retried all the same
            self._drop_connection()
            if not (reused and isinstance(exc, _CONNECTION_ERRORS)):
                return _Outcome(False, retryable=True, reason=f"{type(exc).__name__}: {exc}")
            # A kept-alive connection the server closed while idle: one fresh attempt.
            try:
                response, data = self._request(body, deadline)
            except Exception as exc2:
                self._drop_connection()
                return _Outcome(False, retryable=True, reason=f"{type(exc2).__name__}: {exc2}")
        if response.will_close:
            self._drop_connection()
        status = response.status
        if 200 <= status < 300:
            return _Outcome(True, rejected_spans=_rejected_spans(data))
        return _Outcome(
            False,
            retryable=status in RETRYABLE_STATUSES,
            retry_after_s=_retry_after_s(response.getheader("Retry-After")),
            reason=f"HTTP {status} {response.reason}",
        )

    def _request(self, body: bytes, deadline: float) -> tuple[http.client.HTTPResponse, bytes]:
        # Every step gets what is left of the one budget, never a fresh timeout of its own.
        if self._conn is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = factory(self._netloc, timeout=seconds_left(deadline))
            self._conn.response_class = BudgetedResponse
        conn = self._conn
        if conn.sock is None:
            conn.timeout = seconds_left(deadline)
            conn.connect()  # TCP and TLS: both bounded by the socket timeout as a whole
        conn.sock.settimeout(seconds_left(deadline))  # sendall: a total, not per chunk
        conn.request("POST", self._path, body=body, headers=self._headers)
        conn.sock.settimeout(seconds_left(deadline))  # the answer's budget (BudgetedResponse)
        response = conn.getresponse()
        return response, response.read()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, outcome: _Outcome) -> None:
        self.errors += 1
        self._failing_since += 1
        self._last_failed = True
        self._backoff_s = min(
            self._max_backoff_s, max(self._initial_backoff_s, self._backoff_s * 2)
        )
        pause = self._backoff_s
        if outcome.retry_after_s is not None:
            pause = min(self._max_backoff_s, max(pause, outcome.retry_after_s))
        self._next_attempt = time.monotonic() + pause
        self._log_failure(outcome.reason)

    def _recovered(self) -> None:
        if self._failing_since:
            log.info("profilis: OTLP export to %s recovered", self.endpoint)
        self._failing_since = 0
        self._last_failed = False
        self._backoff_s = 0.0
        self._next_attempt = 0.0

    def _trim(self, keep: int, reason: str) -> None:
        """Drop the oldest buffered spans beyond ``keep``, counted under ``reason``."""
        excess = len(self._buffer) - keep
        for _ in range(excess):
            self._buffer.popleft()
        if excess > 0:
            self.dropped_by_reason[reason] += excess

    def _log_failure(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_S or self._failing_since == 1:
            log.warning(
                "profilis: OTLP export to %s failed (%s); %d spans buffered, %d dropped so far",
                self.endpoint,
                reason,
                len(self._buffer),
                self.dropped,
            )
            self._last_failure_log = now


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    accepted = "a mapping of header names to values without line breaks"
    if not isinstance(headers, Mapping):
        raise ConfigError("headers", accepted, headers)
    for key, value in headers.items():
        if not (isinstance(key, str) and _TOKEN.fullmatch(key)):
            raise ConfigError("headers", accepted, key)
        # A line break in a value would let it smuggle headers of its own into the request.
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ConfigError("headers", accepted, f"{key}: {value!r}")
    return dict(headers)


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _rejected_spans(body: bytes) -> int:
    """Spans a 2xx answer says it refused (OTLP partial success); 0 if it says nothing."""
    if not body:
        return 0
    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(body)
    except Exception:  # protobuf's DecodeError; a proxy's HTML page is no reason to fail
        return 0
    return int(response.partial_success.rejected_spans)
