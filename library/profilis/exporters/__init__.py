"""Exporters: sinks for the collector's batches (``__call__(batch)``, then ``close()`` once).

Each exporter lives in its own module and imports its dependency (orjson, opentelemetry-proto,
prometheus_client) only there, so importing this package loads the standard library alone.
The classes are reachable from here too, imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profilis.exporters.console import ConsoleExporter
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.exporters.otlp import OTLPExporter

__all__ = ["ConsoleExporter", "JSONLExporter", "OTLPExporter"]

# Public name -> the module that defines it; a module is imported when its name is first used.
_LAZY = {
    "ConsoleExporter": "profilis.exporters.console",
    "JSONLExporter": "profilis.exporters.jsonl",
    "OTLPExporter": "profilis.exporters.otlp",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
