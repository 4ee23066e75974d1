"""The core pipeline: the collector (buffer + writer thread) and the emitter (hot path)."""

from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.core.emitter import Emitter

__all__ = ["AsyncCollector", "CollectorHealth", "Emitter"]
