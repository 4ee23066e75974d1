"""Prometheus, in process: a sink for request metrics, collector health, and /metrics endpoints.

``PrometheusExporter`` is a collector sink that folds events into the metrics of DESIGN.md
(``_prom.EventMetrics``, the same code the sidecar aggregates with);
``register_collector_health_metrics`` exposes an ``AsyncCollector``'s counters, read at scrape
time; ``make_asgi_app`` and ``make_metrics_blueprint`` serve a registry. Exposition is always
prometheus_client's. Registries are passed in, never a hidden global. With several worker
processes and no sidecar, each process has its own registry: pass ``worker_label=True``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import exposition
from prometheus_client.asgi import make_asgi_app as _prometheus_asgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from profilis._compat import deprecated_getattr, warn_deprecated
from profilis.config import Config, resolve_setting
from profilis.exporters._prom import DEFAULT_BUCKETS_S, OVERFLOW, EventMetrics
from profilis.exporters.collector import HealthSource

if TYPE_CHECKING:
    from flask import Blueprint

__all__ = [
    "DEFAULT_BUCKETS_S",
    "OVERFLOW",
    "ASGIApp",
    "CollectorHealthMetrics",
    "EventMetrics",
    "PrometheusExporter",
    "make_asgi_app",
    "make_metrics_blueprint",
    "register_collector_health_metrics",
]

# The ASGI callable's shape (as in the ASGI spec: message values are of any type).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class PrometheusExporter:
    """A collector sink that updates the request, function and database metrics.

    ``service`` is the ``service`` label; ``max_label_values`` caps the distinct values of
    each label and ``max_series`` the series of each metric (the excess is counted in
    ``profilis_label_overflow_total`` under ``__overflow__``); ``worker_label`` adds the pid.
    """

    name = "prometheus"

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        service: str | None = None,
        max_label_values: int = 1000,
        max_series: int = 10_000,
        worker_label: bool = False,
        buckets_s: Sequence[float] = DEFAULT_BUCKETS_S,
        buckets: Sequence[float] | None = None,
        instance: str | None = None,
        worker: str | None = None,
    ) -> None:
        # Profilis 1.x arguments: each warns and maps to its 2.0 meaning.
        if buckets is not None:
            warn_deprecated("PrometheusExporter(buckets=)", "buckets_s=")
            buckets_s = buckets
        if instance is not None:
            warn_deprecated("PrometheusExporter(instance=)", "the instance label of the scrape")
        if worker is not None:
            warn_deprecated("PrometheusExporter(worker=)", "worker_label=True (the pid)")
            worker_label = worker_label or bool(worker)
        if registry is None:  # 1.x made a private registry; it is ``self.registry``
            registry = CollectorRegistry()
        self.registry = registry
        service = resolve_setting("service_name", service)  # PROFILIS_SERVICE_NAME if left out
        if not isinstance(service, str) or not 0 < len(service) <= 255:
            raise ValueError("service must be a non-empty string of at most 255 characters")
        self.service = service
        self.metrics = EventMetrics(
            max_label_values=max_label_values,
            max_series=max_series,
            worker_label=worker_label,
            buckets_s=buckets_s,
        )
        registry.register(self.metrics)

    @classmethod
    def from_config(
        cls, config: Config, registry: CollectorRegistry, *, worker_label: bool = False
    ) -> PrometheusExporter:
        return cls(registry, service=config.service_name, worker_label=worker_label)

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        # Never raises: a bad event is skipped and counted, so a retry can never count twice.
        self.metrics.observe(batch, self.service)

    def close(self) -> None:
        """Nothing to release: the registry keeps serving the last values."""


class CollectorHealthMetrics(Collector):
    """A collector's queue and delivery counters, read from ``health()`` at scrape time.

    Names are ``<prefix>_queue_depth{worker}``, ``<prefix>_queue_capacity{worker}``,
    ``<prefix>_events_enqueued_total``, ``<prefix>_events_dropped_total{reason}``,
    ``<prefix>_events_filtered_total`` (sampling, not drops), ``<prefix>_events_exported_total``
    and ``<prefix>_export_errors_total{exporter}``; ``worker`` is the pid, when asked for.
    """

    def __init__(
        self, collector: HealthSource, *, prefix: str = "profilis", worker_label: bool = True
    ):
        self._collector = collector
        self._prefix = prefix
        self._worker_label = worker_label

    def collect(self) -> Iterator[Metric]:
        health = self._collector.health()
        prefix = self._prefix
        names = ["worker"] if self._worker_label else []
        worker = [str(os.getpid())] if self._worker_label else []
        depth = GaugeMetricFamily(
            f"{prefix}_queue_depth", "Events waiting in the collector queue.", labels=names
        )
        depth.add_metric(worker, health.queue_depth)
        capacity = GaugeMetricFamily(
            f"{prefix}_queue_capacity", "Size of the collector queue.", labels=names
        )
        capacity.add_metric(worker, health.queue_capacity)
        dropped = CounterMetricFamily(
            f"{prefix}_events_dropped",
            "Events lost, by reason (queue: buffer full; processor; export: gave up).",
            labels=["reason"],
        )
        for reason, count in sorted(health.dropped.items()):
            dropped.add_metric([reason], count)
        errors = CounterMetricFamily(
            f"{prefix}_export_errors", "Exporter calls that failed.", labels=["exporter"]
        )
        for sink in health.sinks:
            errors.add_metric([sink.name], sink.errors)
        yield depth
        yield capacity
        yield CounterMetricFamily(
            f"{prefix}_events_enqueued", "Events handed to the collector.", value=health.enqueued
        )
        yield dropped
        yield CounterMetricFamily(
            f"{prefix}_events_filtered",
            "Events left out on purpose (sampling, exclusions): not drops.",
            value=health.filtered,
        )
        yield CounterMetricFamily(
            f"{prefix}_events_exported", "Events every exporter accepted.", value=health.exported
        )
        yield errors


def register_collector_health_metrics(
    registry: CollectorRegistry,
    collector: HealthSource,
    *,
    prefix: str = "profilis",
    worker_label: bool = True,
) -> CollectorHealthMetrics:
    """Expose ``collector.health()`` in ``registry`` (see ``CollectorHealthMetrics``)."""
    metrics = CollectorHealthMetrics(collector, prefix=prefix, worker_label=worker_label)
    registry.register(metrics)
    return metrics


def make_asgi_app(registry: CollectorRegistry) -> ASGIApp:
    """An ASGI app serving ``registry`` (mount it at ``/metrics``)."""
    app: ASGIApp = _prometheus_asgi_app(registry)
    return app


def make_metrics_blueprint(
    registry: CollectorRegistry,
    *,
    name: str = "profilis_metrics",
    url: str = "/metrics",
    url_prefix: str | None = None,
) -> Blueprint:
    """A Flask blueprint serving ``registry`` at ``url`` (Flask is imported only here).
    ``url_prefix`` is the Profilis 1.x spelling (deprecated): the blueprint's prefix."""
    from flask import Blueprint, Response, request

    if url_prefix is not None:
        warn_deprecated("make_metrics_blueprint(url_prefix=)", f"url='{url_prefix}{url}'")
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix or None)

    @blueprint.get(url)
    def metrics() -> Response:
        # Text or OpenMetrics, as the scraper's Accept header asks.
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(registry), content_type=content_type)

    return blueprint


# Profilis 1.x's name for the default buckets (deprecated; same values).
__getattr__ = deprecated_getattr(
    __name__, {"DEFAULT_BUCKETS": (lambda: DEFAULT_BUCKETS_S, f"{__name__}.DEFAULT_BUCKETS_S")}
)
