"""Forwarding: accepted events also go to the library's exporters (JSONL, OTLP, console).

``build_forward_sink`` turns a ``--forward`` spec (``jsonl:DIR``, ``otlp:URL``,
``console[:json]``) into an exporter from ``profilis.exporters``, imported only then.
``Forwarder`` checks each event against the full schema (``upgrade_event``: the metrics
checked only the fields they use) and queues it in its own bounded ``AsyncCollector``, whose
writer feeds the exporters: a slow exporter fills that queue and drops, counted; it never
slows ingestion. An exporter that retries by itself (OTLP) always looks successful to the
collector, so its own account (``export_health``) is folded into the forwarder's health:
its failed requests are export errors, what it holds is pending, not exported, what it gave
up on is dropped. Exposed as ``profilis_sidecar_forward_*`` and ``ExporterMetrics``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from profilis.core._delivery import SinkHealth
from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.errors import ConfigError, SchemaError
from profilis.schema import upgrade_event
from profilis_sidecar.settings import SidecarError

__all__ = [
    "FORWARD_SPECS",
    "ExporterMetrics",
    "ForwardSink",
    "Forwarder",
    "SelfSettlingExporter",
    "build_forward_sink",
]

ForwardSink = Callable[[list[Mapping[str, object]]], object]
#: Accepted ``--forward`` forms, for help texts and errors.
FORWARD_SPECS = "jsonl:DIR, otlp:URL or console[:json]"
#: Per-exporter metrics: ``profilis_sidecar_forward_exporter_failing{exporter}`` and so on.
EXPORTER_PREFIX = "profilis_sidecar_forward_exporter"


@runtime_checkable
class SelfSettlingExporter(Protocol):
    """An exporter that keeps and retries failed events itself, never raising (OTLP)."""

    def export_health(self) -> SinkHealth: ...


def build_forward_sink(spec: str, *, service: str) -> ForwardSink:
    """The exporter that ``spec`` names; ``SidecarError`` if it is malformed or unavailable."""
    kind, _, target = spec.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "jsonl":
            if not target:
                raise SidecarError("--forward jsonl:DIR needs a directory")
            from profilis.exporters.jsonl import JSONLExporter

            return JSONLExporter(target, service=service)
        if kind == "otlp":
            if not target:
                raise SidecarError("--forward otlp:URL needs the receiver's URL")
            from profilis.exporters.otlp import OTLPExporter

            return OTLPExporter(target, service_name=service)
        if kind == "console":
            from profilis.exporters.console import ConsoleExporter

            # stderr, like the sidecar's own log lines: a container's stdout stays for data.
            return ConsoleExporter(pretty=target != "json", stream=sys.stderr)
    except ImportError as exc:  # an extra (opentelemetry-proto, say) is not installed
        hint = f"; install it with: pip install 'profilis[{kind}]'" if kind == "otlp" else ""
        raise SidecarError(f"--forward {kind} is unavailable here: {exc}{hint}") from None
    except ConfigError as exc:
        raise SidecarError(f"--forward {spec!r}: {exc}") from None
    raise SidecarError(f"--forward must be {FORWARD_SPECS}, got {spec!r}")


class Forwarder:
    """Checks events and queues them for the forwarding exporters (a bounded queue)."""

    def __init__(self, sinks: Sequence[ForwardSink], *, queue_size: int) -> None:
        if not sinks:
            raise SidecarError("a forwarder needs at least one exporter")
        self._collector: AsyncCollector[Mapping[str, object]] = AsyncCollector(
            list(sinks),
            queue_size=queue_size,
            # Larger batches than an agent's: fewer file writes and OTLP requests.
            batch_max=min(512, queue_size),
            flush_interval=0.5,
            name="profilis-sidecar-forward",
        )
        self._enqueue = self._collector.enqueue
        self._self_settling: list[tuple[int, SelfSettlingExporter]] = []
        candidates: list[object] = list(sinks)  # (a Callable type cannot be narrowed)
        for index, sink in enumerate(candidates):
            if isinstance(sink, SelfSettlingExporter):
                self._self_settling.append((index, sink))
        #: Events counted in the metrics but refused by the full schema check.
        self.invalid_events = 0

    def __call__(self, events: list[object]) -> None:
        enqueue = self._enqueue
        for raw in events:
            try:
                if type(raw) is not dict:
                    raise SchemaError("not an object")
                enqueue(upgrade_event(raw))
            except SchemaError:
                self.invalid_events += 1

    def health(self) -> CollectorHealth:
        """The queue's counters, with what self-settling exporters say of their events.

        Such an exporter took every batch, so the collector counted those events exported;
        those it still holds move to ``in_flight`` and those it gave up on to
        ``dropped["export"]``. Exact with one exporter; with several, an event two of them
        lost is counted as dropped once per exporter.
        """
        health = self._collector.health()
        if not self._self_settling:
            return health
        sinks = list(health.sinks)
        held = lost = errors = 0
        for index, exporter in self._self_settling:
            own, seen = exporter.export_health(), sinks[index]
            sinks[index] = dataclasses.replace(
                seen,
                delivered=own.delivered,
                dropped=seen.dropped + own.dropped,
                errors=seen.errors + own.errors,
                pending=seen.pending + own.pending,
                backing_off=seen.backing_off or own.backing_off,
            )
            held, lost, errors = held + own.pending, lost + own.dropped, errors + own.errors
        dropped = dict(health.dropped)
        dropped["export"] = dropped.get("export", 0) + lost
        return dataclasses.replace(
            health,
            exported=max(0, health.exported - held - lost),
            dropped=dropped,
            export_errors=health.export_errors + errors,
            in_flight=health.in_flight + held,
            sinks=tuple(sinks),
        )

    def failing(self) -> list[str]:
        """The exporters whose last attempt failed (and not yet recovered)."""
        return [sink.name for sink in self.health().sinks if sink.backing_off]

    def healthy(self) -> bool:
        """False while an exporter is failing (from a failed attempt until one succeeds)."""
        return not self.failing()

    def close(self, timeout_s: float) -> None:
        """Send what is queued, within ``timeout_s``, then close the exporters."""
        self._collector.close(timeout_s)


class ExporterMetrics(Collector):
    """Each forwarding exporter's state, read at scrape time (``exporter`` is its name).

    ``profilis_export_errors_total{exporter}`` (in ``metrics``) counts its failures; these say
    whether it is failing now, how many events it holds for a retry and how many it lost.
    """

    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    def collect(self) -> Iterator[Metric]:
        sinks = self._forwarder.health().sinks
        failing = GaugeMetricFamily(
            f"{EXPORTER_PREFIX}_failing",
            "1 from a failed export attempt until one succeeds (the sidecar is then unready).",
            labels=["exporter"],
        )
        pending = GaugeMetricFamily(
            f"{EXPORTER_PREFIX}_events_pending",
            "Events an exporter holds for a retry after a failure.",
            labels=["exporter"],
        )
        dropped = CounterMetricFamily(
            f"{EXPORTER_PREFIX}_events_dropped",
            "Events an exporter gave up on (retry buffer full, refused, or shutdown).",
            labels=["exporter"],
        )
        for sink in sinks:
            failing.add_metric([sink.name], 1.0 if sink.backing_off else 0.0)
            pending.add_metric([sink.name], sink.pending)
            dropped.add_metric([sink.name], sink.dropped)
        yield failing
        yield pending
        yield dropped
