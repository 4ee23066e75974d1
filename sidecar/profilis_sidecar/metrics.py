"""The sidecar's registry: aggregated request metrics plus worker and sidecar health.

``build_registry`` puts together the shared ``EventMetrics`` (request, function, database
series of every worker), ``SidecarHealthMetrics`` (read from ``IngestState.totals()`` at
scrape time), the forwarder's queue health, and prometheus_client's process metrics. No
metric carries pod or namespace labels: Prometheus adds those as target labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from profilis import __version__
from profilis.exporters.prometheus import EventMetrics, register_collector_health_metrics
from profilis_sidecar.forward import Forwarder
from profilis_sidecar.state import IngestState, WorkerState

__all__ = ["FORWARD_PREFIX", "SidecarHealthMetrics", "build_registry", "worker_labels"]

#: Forwarding queue metrics: ``profilis_sidecar_forward_queue_depth`` and so on.
FORWARD_PREFIX = "profilis_sidecar_forward"


def worker_labels(workers: list[WorkerState]) -> list[str]:
    """The ``worker`` label of each worker: its pid, or ``pid@service`` when two share it."""
    shared = Counter(w.pid for w in workers)
    return [f"{w.pid}@{w.service}" if shared[w.pid] > 1 else str(w.pid) for w in workers]


class SidecarHealthMetrics(Collector):
    """Worker health summed over agents, and the sidecar's own ingest counters."""

    def __init__(
        self,
        state: IngestState,
        forwarder: Forwarder | None,
        backlog_bytes: Callable[[], int] = lambda: 0,
    ) -> None:
        self._state = state
        self._forwarder = forwarder
        self._backlog_bytes = backlog_bytes

    def collect(self) -> Iterator[Metric]:
        totals = self._state.totals()
        depth = GaugeMetricFamily(
            "profilis_queue_depth", "Events waiting in each agent's queue.", labels=["worker"]
        )
        capacity = GaugeMetricFamily(
            "profilis_queue_capacity", "Size of each agent's queue.", labels=["worker"]
        )
        for label, worker in zip(worker_labels(totals.workers), totals.workers, strict=True):
            depth.add_metric([label], worker.health.queue_depth)
            capacity.add_metric([label], worker.health.queue_capacity)
        yield depth
        yield capacity
        dropped = CounterMetricFamily(
            "profilis_events_dropped",
            "Events lost, by reason: queue (an agent's buffer was full), transport (an agent "
            "could not send), decode (the sidecar refused them).",
            labels=["reason"],
        )
        for reason, count in totals.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "profilis_events_exported",
            "Events the agents handed to their socket.",
            value=totals.exported,
        )
        errors = CounterMetricFamily(
            "profilis_export_errors",
            "Failed calls of the sidecar's forwarding exporters.",
            labels=["exporter"],
        )
        forwarder = self._forwarder
        if forwarder is not None:
            for sink in forwarder.health().sinks:
                errors.add_metric([sink.name], sink.errors)
        yield errors
        if forwarder is not None:
            yield CounterMetricFamily(
                f"{FORWARD_PREFIX}_invalid_events",
                "Events counted in the metrics but not forwarded: the full schema refused them.",
                value=forwarder.invalid_events,
            )
        yield CounterMetricFamily(
            "profilis_sidecar_events_received",
            "Valid events received from agents and counted in the request metrics.",
            value=totals.events_received,
        )
        yield CounterMetricFamily(
            "profilis_sidecar_datagrams_received",
            "Datagrams read, accepted or rejected.",
            value=totals.datagrams,
        )
        rejected = CounterMetricFamily(
            "profilis_sidecar_rejected_datagrams",
            "Datagrams refused whole, by reason: oversized, malformed, version, types; workers "
            "(a new agent process while the worker table is full), implausible (counters or a "
            "sequence jump no agent could report).",
            labels=["reason"],
        )
        for reason, count in totals.rejected.items():
            rejected.add_metric([reason], count)
        yield rejected
        yield CounterMetricFamily(
            "profilis_sidecar_batches_lost",
            "Datagrams that left an agent and never arrived (gaps in its sequence).",
            value=totals.batches_lost,
        )
        yield GaugeMetricFamily(
            "profilis_sidecar_workers", "Agent processes reporting.", value=totals.workers_live
        )
        yield GaugeMetricFamily(
            "profilis_sidecar_backlog_bytes",
            "Datagrams read and waiting to be processed (a full backlog refuses agents' sends).",
            value=self._backlog_bytes(),
        )
        yield CounterMetricFamily(
            "profilis_sidecar_workers_expired",
            "Agent processes forgotten after they stopped reporting.",
            value=totals.workers_expired,
        )
        info = GaugeMetricFamily(
            "profilis_sidecar_info", "The sidecar's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info


def build_registry(
    state: IngestState,
    metrics: EventMetrics,
    forwarder: Forwarder | None,
    *,
    backlog_bytes: Callable[[], int] = lambda: 0,
) -> CollectorRegistry:
    """A fresh registry with every sidecar metric (never prometheus_client's global one)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(metrics)
    registry.register(SidecarHealthMetrics(state, forwarder, backlog_bytes))
    ProcessCollector(registry=registry)
    if forwarder is not None:
        register_collector_health_metrics(
            registry, forwarder, prefix=FORWARD_PREFIX, worker_label=False
        )
    return registry
