"""Sidecar: the shared collector of one pod, put together and run.

Wires ``IngestState`` (decode, aggregate), ``Receiver`` (sockets, receive thread),
``StatusServer`` (HTTP endpoints), the optional ``Forwarder`` and the registry
(``metrics.build_registry``). ``stop`` is the SIGTERM path: stop accepting, drain the sockets,
flush forwarded events, stop serving, within ``drain_timeout_s``. ``cli`` runs it as the
``profilis-sidecar`` command; tests may run it in process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence

from profilis import __version__
from profilis.exporters.prometheus import EventMetrics
from profilis_sidecar.forward import ExporterMetrics, Forwarder, ForwardSink
from profilis_sidecar.ingest import Receiver
from profilis_sidecar.metrics import build_registry, worker_labels
from profilis_sidecar.server import HttpLimits, HttpStats, StatusServer
from profilis_sidecar.settings import SidecarError, SidecarSettings
from profilis_sidecar.state import IngestState, Totals
from profilis_sidecar.ui import PodDashboard

__all__ = ["Sidecar"]

log = logging.getLogger("profilis.sidecar")


class Sidecar:
    """One pod's collector: ``start()``, then ``stop()`` (bounded by the drain timeout)."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        forward_sinks: Sequence[ForwardSink] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = EventMetrics(
            max_label_values=settings.max_label_values,
            max_series=settings.max_series,
            max_label_length=settings.max_label_length,
            series_budget=settings.series_budget,
            # Counted as profilis_events_dropped_total{reason="decode"} instead.
            invalid_events_metric=None,
        )
        self.forwarder = (
            Forwarder(forward_sinks, queue_size=settings.forward_queue_size)
            if forward_sinks
            else None
        )
        self.dashboard = (
            PodDashboard(
                self._dashboard_health,
                auth_token=settings.ui_token,
                max_events_per_s=settings.ui_events_per_s,
            )
            if settings.ui and settings.ui_events_per_s > 0
            else None
        )
        self.state = IngestState(
            self.metrics,
            default_service=settings.service,
            max_datagram_bytes=settings.max_datagram_bytes,
            worker_expiry_s=settings.worker_expiry_s,
            max_workers=settings.max_workers,
            forward=self._accepted_events if self.dashboard or self.forwarder else None,
            clock=clock,
        )
        self.receiver = Receiver(
            settings.listen,
            self.state.ingest,
            max_datagram_bytes=settings.max_datagram_bytes,
            socket_mode=settings.socket_mode,
            backlog_bytes=settings.backlog_bytes,
            ingest_rate_limit=settings.ingest_rate_limit,
            housekeeping=self.state.expire,
        )
        self.registry = build_registry(
            self.state,
            self.metrics,
            self.forwarder,
            backlog_bytes=lambda: self.receiver.backlog_bytes,
        )
        if self.forwarder is not None:
            self.registry.register(ExporterMetrics(self.forwarder))
        self.http_stats = HttpStats()
        self.registry.register(self.http_stats)
        self._server: StatusServer | None = None
        self._clock = clock
        self._started_s = clock()
        self._stopping = False
        self._last_summary: tuple[float, Totals] = (self._started_s, self.state.totals())

    @property
    def metrics_port(self) -> int:
        if self._server is None:
            raise SidecarError("the sidecar is not started")
        return self._server.port

    def start(self) -> None:
        """Bind the sockets and the metrics port; ``SidecarError`` if either is taken."""
        try:
            self.receiver.start()
            self._server = StatusServer(
                self.settings.metrics_host,
                self.settings.metrics_port,
                self.registry,
                status=self.status if self.settings.ui else None,
                readiness=self.readiness,
                dashboard=self.dashboard.respond_to if self.dashboard is not None else None,
                token=self.settings.ui_token,
                limits=HttpLimits(
                    max_connections=self.settings.http_max_connections,
                    read_timeout_s=self.settings.http_read_timeout_s,
                    idle_timeout_s=self.settings.http_idle_timeout_s,
                    write_timeout_s=self.settings.http_write_timeout_s,
                ),
                stats=self.http_stats,
            )
        except (OSError, SidecarError) as exc:
            self.receiver.stop(0.0)
            if self.forwarder is not None:
                self.forwarder.close(0.0)
            if isinstance(exc, SidecarError):
                raise
            where = f"{self.settings.metrics_host}:{self.settings.metrics_port}"
            raise SidecarError(f"cannot serve metrics on {where}: {exc}") from exc
        self._server.start()
        log.info(
            "profilis-sidecar %s: listening on %s, metrics on http://%s:%d/metrics%s",
            __version__,
            ", ".join(str(a) for a in self.settings.listen),
            self.settings.metrics_host,
            self._server.port,
            self._where(),
        )

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop ingesting, drain, flush forwarded events and stop serving, within the budget."""
        if self._stopping:
            return
        self._stopping = True
        budget = self.settings.drain_timeout_s if timeout_s is None else max(0.0, timeout_s)
        deadline = time.monotonic() + budget
        # Half for queued datagrams (a few hundred at most); the rest for forwarding.
        self.receiver.stop(budget / 2)
        if self.forwarder is not None:
            self.forwarder.close(max(0.0, deadline - time.monotonic()))
        if self.dashboard is not None:
            self.dashboard.close(max(0.0, deadline - time.monotonic()))
        if self._server is not None:
            self._server.stop()
        self.log_summary(final=True)

    def _accepted_events(self, events: list[object]) -> None:
        """Receive thread: every accepted envelope's events, to the page and the forwarder."""
        if self.dashboard is not None:
            self.dashboard(events)
        if self.forwarder is not None:
            self.forwarder(events)

    # ------------------------------------------------------------------ status
    def _dashboard_health(self) -> dict[str, object]:
        """The pod's collector health as the dashboard shows it: sums, then one row a worker."""
        totals = self.state.totals()
        workers = [
            {
                "worker": label,
                "service": w.service,
                "pid": w.pid,
                "queue_depth": w.health.queue_depth,
                "queue_capacity": w.health.queue_capacity,
                "exported": w.health.exported,
                "dropped_queue": w.health.dropped_queue,
                "dropped_transport": w.health.dropped_transport,
                "batches_lost": w.batches_lost,
            }
            for label, w in zip(worker_labels(totals.workers), totals.workers, strict=True)
        ]
        return {
            "queue_depth": sum(w.health.queue_depth for w in totals.workers),
            "queue_capacity": sum(w.health.queue_capacity for w in totals.workers),
            "enqueued": sum(w.health.enqueued for w in totals.workers),
            "exported": totals.exported,
            "dropped": dict(totals.dropped),
            "dropped_total": sum(totals.dropped.values()),
            "export_errors": self.forwarder.health().export_errors if self.forwarder else 0,
            "workers": workers,
        }

    def readiness(self) -> list[str]:
        """Why the sidecar is not ready (empty when it is). Runs on the HTTP server's event
        loop, so a probe never waits behind a render: it must only read counters."""
        problems = []
        if self._stopping:
            problems.append("shutting down")
        elif not (self.receiver.bound and self.receiver.alive):
            problems.append("not receiving: sockets not bound")
        failing = self.forwarder.failing() if self.forwarder is not None else []
        if failing:
            problems.append(f"a forwarding exporter is failing: {', '.join(failing)}")
        return problems

    def status(self) -> dict[str, object]:
        """What /_profilis serves: identity, counters, workers, forwarding."""
        totals = self.state.totals()
        now = self._clock()
        problems = self.readiness()
        workers = [
            {
                "worker": label,
                "service": w.service,
                "pid": w.pid,
                "seq": w.seq,
                "seen_for_s": round(now - w.first_seen_s, 3),
                "last_seen_s_ago": round(now - w.last_seen_s, 3),
                "events_received": w.events_received,
                "batches_lost": w.batches_lost,
                "restarts": w.restarts,
                "queue_depth": w.health.queue_depth,
                "queue_capacity": w.health.queue_capacity,
                "enqueued": w.health.enqueued,
                "dropped_queue": w.health.dropped_queue,
                "dropped_transport": w.health.dropped_transport,
                "exported": w.health.exported,
            }
            for label, w in zip(worker_labels(totals.workers), totals.workers, strict=True)
        ]
        forward: dict[str, object] | None = None
        if self.forwarder is not None:
            health = self.forwarder.health()
            forward = {
                "queue_depth": health.queue_depth,
                "queue_capacity": health.queue_capacity,
                "exported": health.exported,
                "dropped": dict(health.dropped),
                "invalid_events": self.forwarder.invalid_events,
                "exporters": [
                    {"name": s.name, "errors": s.errors, "backing_off": s.backing_off}
                    for s in health.sinks
                ],
            }
        return {
            "sidecar": {
                "version": __version__,
                "pid": os.getpid(),
                "pod": self.settings.pod_name,
                "namespace": self.settings.pod_namespace,
                "service": self.settings.service,
                "listen": [str(a) for a in self.settings.listen],
                "uptime_s": round(now - self._started_s, 3),
                "cpu_s": round(time.process_time(), 3),
                "ready": not problems,
                "problems": problems,
            },
            "counters": {
                "datagrams": totals.datagrams,
                "events_received": totals.events_received,
                "events_exported": totals.exported,
                "batches_lost": totals.batches_lost,
                "rejected": dict(totals.rejected),
                "dropped": dict(totals.dropped),
                "workers_live": totals.workers_live,
                "workers_expired": totals.workers_expired,
                "backlog_bytes": self.receiver.backlog_bytes,
                "internal_errors": self.receiver.internal_errors,
            },
            "workers": workers,
            "forward": forward,
            "dashboard": None
            if self.dashboard is None
            else {"sampled_out": self.dashboard.sampled_out, "path": "/_profilis/"},
        }

    def log_summary(self, *, final: bool = False) -> None:
        """One line with what changed since the last one (never a line per event)."""
        now = self._clock()
        totals = self.state.totals()
        since, before = self._last_summary
        self._last_summary = (now, totals)
        elapsed = max(now - since, 1e-9)
        events = totals.events_received - before.events_received
        rejected = _changes(totals.rejected, before.rejected)
        dropped = _changes(totals.dropped, before.dropped)
        log.info(
            "profilis-sidecar%s: %.0fs: workers=%d events=+%d (%.0f/s) total=%d "
            "dropped=+%s rejected=+%s batches_lost=+%d%s",
            " stopped" if final else "",
            elapsed,
            totals.workers_live,
            events,
            events / elapsed,
            totals.events_received,
            dropped or "0",
            rejected or "0",
            totals.batches_lost - before.batches_lost,
            self._where(),
        )

    def _where(self) -> str:
        pod, namespace = self.settings.pod_name, self.settings.pod_namespace
        if pod is None and namespace is None:
            return ""
        return f" pod={namespace or '-'}/{pod or '-'}"


def _changes(now: Mapping[str, int], before: Mapping[str, int]) -> str:
    """``{reason:n,...}`` for each counter that moved since ``before``; empty if none did."""
    moved = {key: value - before.get(key, 0) for key, value in now.items()}
    shown = ",".join(f"{key}:{value}" for key, value in moved.items() if value)
    return f"{{{shown}}}" if shown else ""
