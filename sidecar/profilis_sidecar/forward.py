"""Forwarding: accepted events also go to the library's exporters (JSONL, OTLP, console).

``build_forward_sink`` turns a ``--forward`` spec (``jsonl:DIR``, ``otlp:URL``,
``console[:json]``) into an exporter from ``profilis.exporters``, imported only then.
``Forwarder`` checks each event against the full schema (``upgrade_event``: the metrics
checked only the fields they use) and queues it in its own bounded ``AsyncCollector``, whose
writer feeds the exporters: a slow exporter fills that queue and drops, counted; it never
slows ingestion. Its health is exposed as ``profilis_sidecar_forward_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.errors import ConfigError, SchemaError
from profilis.schema import upgrade_event
from profilis_sidecar.settings import SidecarError

__all__ = ["FORWARD_SPECS", "ForwardSink", "Forwarder", "build_forward_sink"]

ForwardSink = Callable[[list[Mapping[str, object]]], object]
#: Accepted ``--forward`` forms, for help texts and errors.
FORWARD_SPECS = "jsonl:DIR, otlp:URL or console[:json]"


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

            return ConsoleExporter(pretty=target != "json")
    except ImportError as exc:  # an extra (opentelemetry-proto, say) is not installed
        raise SidecarError(f"--forward {kind} is unavailable here: {exc}") from None
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
        return self._collector.health()

    def healthy(self) -> bool:
        """False while an exporter is failing (backing off before its next attempt)."""
        return not any(sink.backing_off for sink in self._collector.health().sinks)

    def close(self, timeout_s: float) -> None:
        """Send what is queued, within ``timeout_s``, then close the exporters."""
        self._collector.close(timeout_s)
