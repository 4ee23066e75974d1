"""SidecarSettings: every knob of the sidecar, checked once, with its unit and default.

Built by ``profilis_sidecar.cli`` from flags and environment, or directly in tests and
embedding code. A bad value raises ``SidecarError`` naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from profilis._validation import check_float, check_int
from profilis.config import DEFAULT_COLLECTOR_ADDRESS, CollectorAddress, parse_collector_address
from profilis.errors import ConfigError, ProfilisError

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_METRICS_PORT",
    "SidecarError",
    "SidecarSettings",
]

DEFAULT_LISTEN: Final = DEFAULT_COLLECTOR_ADDRESS
#: The port named ``profilis-http`` in pod specs (DESIGN.md).
DEFAULT_METRICS_PORT: Final = 9464


class SidecarError(ProfilisError):
    """The sidecar cannot start as configured (bad setting, socket in use, missing exporter)."""


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    # Where agents send datagrams: unix:///path (the pod's shared emptyDir) and/or
    # udp://127.0.0.1:PORT. Default: the agent's default socket.
    listen: tuple[CollectorAddress, ...] = (parse_collector_address(DEFAULT_LISTEN),)
    # Interface and port of /metrics, /healthz, /readyz and /_profilis. 0.0.0.0 by default:
    # Prometheus scrapes the pod IP.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = DEFAULT_METRICS_PORT
    # The service label for agents that did not name one (their envelope says
    # "unknown_service"); agents that name their service keep it.
    service: str = "unknown_service"
    # Seconds without a datagram after which a worker's gauges are removed. Agents send a
    # heartbeat every 5 s when idle, so 30 s is six missed heartbeats.
    worker_expiry_s: float = 30.0
    # Datagrams larger than this (bytes) are refused as "oversized". 64 KiB holds the
    # agent's default 60,000-byte datagrams, on Unix sockets and UDP alike.
    max_datagram_bytes: int = 65_536
    # Bytes of datagrams read from the sockets and waiting to be processed. The kernel holds
    # only about ten per Unix socket; this absorbs bursts (16 MiB: some 800 full batches,
    # a fraction of a second at full load) before agents see their sends refused.
    backlog_bytes: int = 16 << 20
    # Datagrams a second (at most) read from the sockets; 0: unlimited (the default). For
    # demos and for testing the queue alerts: a throttled sidecar makes the kernel's queue,
    # then the agents' queues fill (they keep their batches and retry) while /metrics keeps
    # answering. A token bucket holding one second's worth (at least one datagram).
    ingest_rate_limit: float = 0.0
    # Seconds between summary log lines (one line per interval, never one per event).
    log_interval_s: float = 60.0
    # Seconds SIGTERM may take: stop ingesting, drain queued datagrams and forwarded
    # events, exit. Kept well under Kubernetes' default 30 s grace period.
    drain_timeout_s: float = 5.0
    # Permission bits of the Unix socket. Any container of the pod may send (they run as
    # different users and share only the emptyDir), and every datagram is untrusted anyway;
    # narrow it (0o660 with a shared fsGroup) where the pod allows.
    socket_mode: int = 0o666
    # Cardinality caps of the request metrics: distinct values per label, series per metric.
    max_label_values: int = 1000
    max_series: int = 10_000
    # Longest label value (characters) exposed; longer ones collapse to __overflow__. Keeps
    # one scrape small whatever agents send; Prometheus' labelValueLengthLimit must allow it.
    max_label_length: int = 256
    # Series of the request metrics in one /metrics, counted as Prometheus counts them (a
    # histogram is 14); past it new label sets share one __overflow__ series per metric.
    # 20,000 at the length cap is ~12 MB of text rendered in well under a second.
    series_budget: int = 20_000
    # Agent processes (service, pid) tracked at once; datagrams from more are refused as
    # "workers" until some expire. Bounds memory and /_profilis/status.json.
    max_workers: int = 1024
    # Events queued for forwarding exporters (count); past it the oldest are dropped, counted.
    forward_queue_size: int = 65_536
    # Events a second (at most) shown on the pod dashboard at /_profilis/; 0 turns the page
    # off. Past it events are sampled out of the page only (metrics stay exact): the page
    # costs ~2 us an event, which must never come out of ingestion.
    ui_events_per_s: float = 20_000.0
    # Token the dashboard asks for (Bearer, X-Profilis-Token or ?token=); None: open to
    # whoever can reach the metrics port, like /metrics itself.
    ui_token: str | None = None
    # Serve /_profilis/ (the page and status.json) at all: PROFILIS_SIDECAR_UI=on|off.
    # /metrics, /healthz and /readyz are served either way.
    ui: bool = True
    # The metrics port is open to the whole cluster, so what one client may hold is bounded:
    # open connections (past it the longest-idle one is closed for the newcomer, so a flood
    # of half-open sockets cannot lock out the scraper or the probes), seconds for a request
    # head to arrive, seconds a kept-alive connection may wait for its next request (90: a
    # 1-minute scrape keeps its connection), seconds to write a response to a slow reader.
    http_max_connections: int = 64
    http_read_timeout_s: float = 10.0
    http_idle_timeout_s: float = 90.0
    http_write_timeout_s: float = 30.0
    # Downward-API identity (POD_NAME, POD_NAMESPACE): logs and /_profilis only, never
    # metric labels (Prometheus adds its own target labels).
    pod_name: str | None = None
    pod_namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.listen or not all(isinstance(a, CollectorAddress) for a in self.listen):
            raise SidecarError("listen must hold at least one address (unix:// or udp://)")
        paths = [a.path for a in self.listen if a.scheme == "unix"]
        if len(paths) != len(set(paths)):
            raise SidecarError("listen names the same socket path twice")
        if not isinstance(self.metrics_host, str) or not self.metrics_host:
            raise SidecarError("metrics_host must be an interface address such as 0.0.0.0")
        if not isinstance(self.service, str) or not 0 < len(self.service) <= 255:
            raise SidecarError("service must be a non-empty string of at most 255 characters")
        try:
            check_int("metrics_port", self.metrics_port, minimum=0, maximum=65535)
            check_float("worker_expiry_s", self.worker_expiry_s, minimum=1.0, maximum=86400.0)
            check_int("max_datagram_bytes", self.max_datagram_bytes, minimum=512, maximum=1 << 22)
            check_int("backlog_bytes", self.backlog_bytes, minimum=0, maximum=1 << 32)
            check_float("ingest_rate_limit", self.ingest_rate_limit, minimum=0.0, maximum=1e7)
            check_float("log_interval_s", self.log_interval_s, minimum=0.1, maximum=86400.0)
            check_float("drain_timeout_s", self.drain_timeout_s, minimum=0.0, maximum=600.0)
            check_int("socket_mode", self.socket_mode, minimum=0, maximum=0o777)
            check_int("max_label_values", self.max_label_values, minimum=1, maximum=1_000_000)
            check_int("max_series", self.max_series, minimum=1, maximum=10_000_000)
            check_int("max_label_length", self.max_label_length, minimum=16, maximum=1024)
            check_int("series_budget", self.series_budget, minimum=100, maximum=10_000_000)
            check_int("max_workers", self.max_workers, minimum=1, maximum=1_000_000)
            check_int("forward_queue_size", self.forward_queue_size, minimum=1, maximum=10_000_000)
            check_float("ui_events_per_s", self.ui_events_per_s, minimum=0.0, maximum=1e7)
            check_int("http_max_connections", self.http_max_connections, minimum=4, maximum=65_536)
            check_float("http_read_timeout_s", self.http_read_timeout_s, minimum=0.1, maximum=600.0)
            check_float(
                "http_idle_timeout_s", self.http_idle_timeout_s, minimum=0.1, maximum=3600.0
            )
            check_float(
                "http_write_timeout_s", self.http_write_timeout_s, minimum=0.1, maximum=600.0
            )
        except ConfigError as exc:
            raise SidecarError(str(exc)) from None
        if self.ui_token is not None and not (isinstance(self.ui_token, str) and self.ui_token):
            raise SidecarError("ui_token must be a non-empty string or None")
        if not isinstance(self.ui, bool):
            raise SidecarError("ui must be True (serve /_profilis/) or False")
