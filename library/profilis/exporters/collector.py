"""CollectorExporter: the agent's sink that ships each batch to the pod's shared sidecar.

It runs on the collector's writer thread, never an app thread. Each batch becomes one or more
wire envelopes (``_wire``, split to stay under ``max_datagram_bytes``), each sent as one
datagram on a non-blocking Unix (or UDP) socket. A full socket buffer (a slow or paused
sidecar) keeps the datagram: the writer waits for room with a capped backoff, so the
collector's queue absorbs the burst, its depth shows the backpressure and only its overflow
drops (``dropped_queue``). A missing socket or a dead sidecar counts the events as
``dropped_transport`` and moves on; the socket is reopened at most once per
``reconnect_interval_s``. Closing (this exporter or its collector) bounds the waiting to
``close_timeout_s``. A heartbeat thread sends a health-only envelope when the process has been
quiet, and ``close`` sends a last one, so the sidecar's counters end exact. A forked child gets
its own socket, sequence and counters. The sidecar imports the decoding half from here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from profilis._validation import check_float, check_int
from profilis._version import __version__
from profilis.config import (
    DEFAULT_COLLECTOR_ADDRESS,
    CollectorAddress,
    Config,
    parse_collector_address,
    resolve_setting,
)
from profilis.core.async_collector import CollectorHealth
from profilis.errors import ConfigError
from profilis.exporters._wire import (
    DEFAULT_MAX_DATAGRAM_BYTES,
    MAX_DATAGRAM_BYTES_LIMIT,
    MIN_DATAGRAM_BYTES,
    REJECT_REASONS,
    WIRE_VERSION,
    Envelope,
    JsonCodec,
    RejectReason,
    WireError,
    WireHealth,
    datagram_size,
    decode_envelope,
    encode_chunks,
    encode_header,
    join_datagram,
    load_codec,
)
from profilis.exporters._wire_transport import FULL, REFUSED, SENT, DatagramTransport

__all__ = [
    "DEFAULT_MAX_DATAGRAM_BYTES",
    "REJECT_REASONS",
    "WIRE_VERSION",
    "CollectorExporter",
    "Envelope",
    "HealthSource",
    "JsonCodec",
    "RejectReason",
    "TransportStats",
    "WireError",
    "WireHealth",
    "decode_envelope",
    "load_codec",
]

log = logging.getLogger("profilis.exporters.collector")

#: Transport drops are logged at most this often: a line per drop would flood the app's logs.
DROP_LOG_INTERVAL_S: Final = 60.0
#: Waiting for room in a full socket buffer: the first wait, doubled up to the cap. Short, so
#: a resumed sidecar is fed again within milliseconds; capped, so closing is seen promptly.
RETRY_INITIAL_BACKOFF_S: Final = 0.001
RETRY_MAX_BACKOFF_S: Final = 0.05
_SERVICE_MAX: Final = 255
_NO_EVENTS: Final = b"[]"


class HealthSource(Protocol):
    """What the exporter reads the queue counters from: an ``AsyncCollector``.

    A ``closed`` attribute, when the source has one (``AsyncCollector`` does), ends the wait
    for a full socket buffer within ``close_timeout_s`` once it turns true.
    """

    def health(self) -> CollectorHealth: ...


@dataclass(frozen=True, slots=True)
class TransportStats:
    """The exporter's own counters (per process: a forked child starts from zero)."""

    sent_events: int
    sent_datagrams: int
    #: Events that did not leave the process, all causes (the ones below included).
    dropped_transport: int
    #: Single events too large for one datagram.
    oversized_events: int
    #: Events the JSON codec could not encode.
    unencodable_events: int
    #: Successful socket (re)connections.
    connects: int
    connected: bool
    last_error: str | None


class CollectorExporter:
    """Sends batches to the sidecar at ``address`` (``unix:///path`` or ``udp://host:port``).

    Attach the collector whose health the envelopes report, either here (``collector=``)
    or with ``attach`` once the collector that uses this sink exists::

        exporter = CollectorExporter.from_config(config)
        collector = AsyncCollector(exporter, queue_size=config.queue_size)
        exporter.attach(collector)

    ``heartbeat_interval_s=0`` turns heartbeats off; UDP hosts are resolved when the socket
    opens, so use an IP address or a name the hosts file answers.
    """

    name = "collector"

    # Set by _reset: at start and again in a forked child.
    _pid: int
    _lock: threading.Lock
    _transport: DatagramTransport
    _seq: int
    _sent_events: int
    _sent_datagrams: int
    _dropped: int
    _oversized: int
    _unencodable: int
    _last_send: float
    _give_up_at: float | None
    _last_log: float
    _logged_drops: int
    _heartbeat_stop: threading.Event

    def __init__(
        self,
        address: CollectorAddress | str = DEFAULT_COLLECTOR_ADDRESS,
        *,
        service: str | None = None,
        collector: HealthSource | None = None,
        max_datagram_bytes: int = DEFAULT_MAX_DATAGRAM_BYTES,
        reconnect_interval_s: float = 0.5,
        heartbeat_interval_s: float = 5.0,
        close_timeout_s: float = 1.0,
        send_buffer_bytes: int = 1 << 20,
        use_orjson: bool | None = None,
    ) -> None:
        if isinstance(address, str):
            address = parse_collector_address(address, "address")
        elif not isinstance(address, CollectorAddress):
            raise ConfigError("address", "a CollectorAddress or an address string", address)
        self.address = address
        service = resolve_setting("service_name", service)  # PROFILIS_SERVICE_NAME if left out
        if not isinstance(service, str) or not 0 < len(service) <= _SERVICE_MAX:
            raise ConfigError("service", "a non-empty string of at most 255 characters", service)
        self._service = service
        self._max_bytes = check_int(
            "max_datagram_bytes",
            max_datagram_bytes,
            minimum=MIN_DATAGRAM_BYTES,
            maximum=MAX_DATAGRAM_BYTES_LIMIT,
        )
        self._reconnect_interval_s = check_float(
            "reconnect_interval_s", reconnect_interval_s, minimum=0.0, maximum=3600.0
        )
        self._heartbeat_interval_s = check_float(
            "heartbeat_interval_s", heartbeat_interval_s, minimum=0.0, maximum=3600.0
        )
        self._close_timeout_s = check_float(
            "close_timeout_s", close_timeout_s, minimum=0.0, maximum=60.0
        )
        # 0 keeps the system default. A larger buffer lets a burst of datagrams wait in the
        # kernel instead of being dropped while the sidecar catches up.
        self._send_buffer_bytes = check_int(
            "send_buffer_bytes", send_buffer_bytes, minimum=0, maximum=64 << 20
        )
        self._codec: JsonCodec = load_codec(use_orjson)
        # The events' share of a datagram: what is left after the largest possible header.
        worst = WireHealth(*([2**63 - 1] * 6))
        header = encode_header(
            self._codec.dumps,
            profilis_version=__version__,
            service=service,
            pid=2**32 - 1,
            seq=2**63 - 1,
            health=worst,
        )
        self._budget = self._max_bytes - datagram_size(header, b"")
        if self._budget < 64:
            raise ConfigError(
                "max_datagram_bytes", "room for the envelope and events", max_datagram_bytes
            )
        self._source = collector
        self._closed = False
        self._heartbeat: threading.Thread | None = None
        self._reset(os.getpid())
        _live.add(self)
        if collector is not None:
            self._start_heartbeat()

    @classmethod
    def from_config(
        cls, config: Config, collector: HealthSource | None = None
    ) -> CollectorExporter:
        """An exporter for ``config.collector_address``, labelled ``config.service_name``."""
        return cls(config.collector_address, service=config.service_name, collector=collector)

    def attach(self, collector: HealthSource) -> None:
        """Report ``collector``'s queue counters in every envelope, and start heartbeats."""
        self._source = collector
        self._start_heartbeat()

    # ------------------------------------------------------------------ the sink
    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Send ``batch``, waiting while the socket buffer is full; never raises.

        What cannot be sent (no sidecar, or closing ran out of time) is counted as
        ``dropped_transport``.
        """
        if not batch:
            return
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._closed:
                self._dropped += len(batch)
                return
            settled = self._sent_events + self._dropped
            try:
                self._send_batch(batch)
            except Exception:
                # Raising would make the collector retry the batch, and resend what left.
                unsettled = len(batch) - (self._sent_events + self._dropped - settled)
                self._dropped += max(0, unsettled)
                log.debug("profilis: collector exporter failed on a batch", exc_info=True)

    def heartbeat(self) -> bool:
        """Send a health-only envelope now; True if it left the process.

        Skipped (False) while the writer holds the socket, e.g. waiting for a paused sidecar:
        the writer's own datagrams carry the same health, and a heartbeat never waits on it.
        """
        if self._pid != os.getpid():
            self._after_fork()
        lock = self._lock
        if not lock.acquire(blocking=False):
            return False
        try:
            # After close the socket is gone for good: reopening it would leak it.
            return not self._closed and self._send(_NO_EVENTS, 0, self._source_health()) == SENT
        finally:
            lock.release()

    def close(self) -> None:
        """Stop heartbeats, send the final health within ``close_timeout_s``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _live.discard(self)
        self._heartbeat_stop.set()
        thread = self._heartbeat
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._close_timeout_s)
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            try:
                self._send_final()
            finally:
                self._transport.close()

    def stats(self) -> TransportStats:
        return TransportStats(
            sent_events=self._sent_events,
            sent_datagrams=self._sent_datagrams,
            dropped_transport=self._dropped,
            oversized_events=self._oversized,
            unencodable_events=self._unencodable,
            connects=self._transport.connects,
            connected=self._transport.connected,
            last_error=self._transport.last_error,
        )

    # ------------------------------------------------------------------ sending
    def _send_batch(self, batch: Sequence[Mapping[str, Any]]) -> None:
        health = self._source_health()
        chunks = encode_chunks(batch, self._codec.dumps, self._budget)
        self._oversized += chunks.oversized
        self._unencodable += chunks.unencodable
        self._dropped += chunks.oversized + chunks.unencodable
        for index, (count, events_json) in enumerate(chunks.parts):
            result = self._send_kept(events_json, count, health)
            if result == REFUSED:
                self._dropped += count  # EMSGSIZE: this one will never fit; the next may
            elif result != SENT:
                # The sidecar is gone, or closing ran out of time: the rest would fare no
                # better.
                self._dropped += sum(n for n, _ in chunks.parts[index:])
                break
        if self._dropped > self._logged_drops:
            self._log_drops()

    def _send_kept(self, events_json: bytes, count: int, source: tuple[int, int, int, int]) -> int:
        """Send one datagram, waiting for room while the buffer is full (``_give_up`` ends it)."""
        result = self._send(events_json, count, source)
        backoff = RETRY_INITIAL_BACKOFF_S
        ready = False
        while result == FULL and not self._give_up():
            if ready:
                # select saw room that the kernel then refused (ENOBUFS): sleep, never spin.
                time.sleep(backoff)
            ready = self._transport.wait_writable(backoff)
            backoff = min(2 * backoff, RETRY_MAX_BACKOFF_S)
            # Fresh counters: the depth the queue reached meanwhile is the news to report.
            result = self._send(events_json, count, self._source_health())
        return result

    def _give_up(self) -> bool:
        """True once closing (this exporter's or its collector's) has lasted close_timeout_s."""
        if not (self._closed or getattr(self._source, "closed", False)):
            return False
        now = time.monotonic()
        if self._give_up_at is None:
            self._give_up_at = now + self._close_timeout_s
        return now >= self._give_up_at

    def _send(self, events_json: bytes, count: int, source: tuple[int, int, int, int]) -> int:
        header = encode_header(
            self._codec.dumps,
            profilis_version=__version__,
            service=self._service,
            pid=self._pid,
            seq=self._seq + 1,
            health=WireHealth(
                *source,
                dropped_transport=self._dropped,
                exported=self._sent_events + count,
            ),
        )
        result = self._transport.send(join_datagram(header, events_json))
        if result != SENT:
            return result
        # The sequence moves only when a datagram leaves, so a gap seen by the sidecar means
        # loss on the way (UDP), never a send already counted here as dropped.
        self._seq += 1
        self._sent_events += count
        self._sent_datagrams += 1
        self._last_send = time.monotonic()
        return SENT

    def _send_final(self) -> None:
        """The last health, waiting for room within what is left of ``close_timeout_s``."""
        self._transport.allow_reconnect_now()
        self._send_kept(_NO_EVENTS, 0, self._source_health())

    def _source_health(self) -> tuple[int, int, int, int]:
        """queue_depth, queue_capacity, enqueued, dropped_queue of the attached collector."""
        source = self._source
        if source is None:
            return (0, 0, 0, 0)
        health = source.health()
        return (
            health.queue_depth,
            health.queue_capacity,
            health.enqueued,
            health.dropped.get("queue", 0),
        )

    def _log_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_log < DROP_LOG_INTERVAL_S:
            return
        log.warning(
            "profilis: could not send %d events to the collector at %s since the last report "
            "(last error: %s); they are counted as dropped_transport",
            self._dropped - self._logged_drops,
            self.address,
            self._transport.last_error or "none",
        )
        self._logged_drops = self._dropped
        self._last_log = now

    # ------------------------------------------------------------------ heartbeats and fork
    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None or self._closed or self._heartbeat_interval_s <= 0:
            return
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop,
            args=(self._heartbeat_stop,),
            name="profilis-collector-heartbeat",
            daemon=True,
        )
        self._heartbeat.start()

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = self._heartbeat_interval_s
        wait = 0.0  # the first one at once: the sidecar lists this process before it works
        while not stop.wait(wait):
            idle = time.monotonic() - self._last_send
            if idle < interval and wait > 0:
                wait = interval - idle
                continue
            try:
                self.heartbeat()
            except Exception:  # a heartbeat is best effort: never end the thread
                log.debug("profilis: collector heartbeat failed", exc_info=True)
            wait = interval

    def _reset(self, pid: int) -> None:
        """Fresh socket, sequence, counters and lock: at start and in a forked child."""
        self._pid = pid
        self._lock = threading.Lock()
        self._transport = DatagramTransport(
            self.address,
            reconnect_interval_s=self._reconnect_interval_s,
            send_buffer_bytes=self._send_buffer_bytes,
        )
        self._seq = 0
        self._sent_events = self._sent_datagrams = 0
        self._dropped = self._oversized = self._unencodable = 0
        self._last_send = time.monotonic()
        self._give_up_at = None
        self._last_log = float("-inf")
        self._logged_drops = 0
        self._heartbeat_stop = threading.Event()

    def _after_fork(self) -> None:
        # The parent keeps its socket and counts; the child's envelopes carry its own pid and
        # start again at seq 1, so the sidecar sees a new worker. The inherited lock may be
        # held by a parent thread that does not exist here, hence a new one.
        inherited = self._transport
        had_heartbeat = self._heartbeat is not None
        self._reset(os.getpid())
        inherited.close()  # this process's copy of the descriptor; the parent keeps its own
        self._heartbeat = None
        if had_heartbeat:
            self._start_heartbeat()


# Live exporters, for the fork hook (weak: an exporter may be dropped without close()).
_live: weakref.WeakSet[CollectorExporter] = weakref.WeakSet()


def _reinit_exporters_in_child() -> None:
    for exporter in list(_live):
        exporter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_exporters_in_child)
