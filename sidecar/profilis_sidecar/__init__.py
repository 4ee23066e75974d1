"""The shared-collector sidecar: one process per pod that ingests every worker's batches.

Agents (``profilis.exporters.collector``) send wire envelopes over a Unix datagram socket;
the sidecar aggregates them into one set of metrics (``profilis-sidecar``, ``cli``), served
with worker health on one port. It imports ``profilis``, never the operator.
``python -m profilis_sidecar.loadgen`` starts agent processes for tests, bench and demos.
"""

from profilis import __version__
from profilis_sidecar.settings import SidecarError, SidecarSettings
from profilis_sidecar.sidecar import Sidecar

__all__ = ["Sidecar", "SidecarError", "SidecarSettings", "__version__"]
