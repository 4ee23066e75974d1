"""``BaseExporter``: a base class for custom exporters, as the Profilis 1.0 README wrote them.

Subclass it and implement ``export(events)``; the collector calls the instance with each
batch (the sink contract of ``profilis.core.contracts``). Any callable taking a batch is a
sink too: the base class only names the method and gives ``close`` a default.
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["BaseExporter"]


class BaseExporter(abc.ABC):
    """A sink whose ``export(events)`` receives every batch; raise to have it retried."""

    #: The sink's name in the collector's health (``type(self).__name__`` when None).
    name: str | None = None

    def __call__(self, batch: list[dict[str, Any]], /) -> None:
        self.export(batch)

    @abc.abstractmethod
    def export(self, events: list[dict[str, Any]]) -> None:
        """Deliver ``events`` (one batch). Runs on the collector's writer thread."""

    def close(self) -> None:
        """Release resources; called once when the collector closes. Nothing by default."""
        return None
