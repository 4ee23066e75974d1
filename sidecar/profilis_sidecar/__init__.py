"""The shared-collector sidecar: one process per pod that ingests every worker's batches.

Placeholder until the sidecar issue lands; it may import ``profilis``, never the operator.
"""

from profilis import __version__

__all__ = ["__version__"]
