"""The shared-collector sidecar: one process per pod that ingests every worker's batches.

Agents (``profilis.exporters.collector``) send wire envelopes over a Unix datagram socket;
the sidecar aggregates them into one set of metrics (``profilis-sidecar``, ``cli``), served
with worker health on one port. It imports ``profilis``, never the operator.
``python -m profilis_sidecar.loadgen`` starts agent processes for tests, bench and demos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from profilis import __version__
from profilis_sidecar.settings import SidecarError, SidecarSettings

if TYPE_CHECKING:
    from profilis_sidecar.sidecar import Sidecar

__all__ = ["Sidecar", "SidecarError", "SidecarSettings", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use, so that ``profilis-sidecar`` can name the missing extra
    # (prometheus_client) instead of failing as this package is imported.
    if name == "Sidecar":
        from profilis_sidecar.sidecar import Sidecar

        return Sidecar
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
