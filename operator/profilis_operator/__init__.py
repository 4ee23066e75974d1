"""The kopf operator and its mutating admission webhook.

Placeholder until the operator issue lands; it may import ``profilis``, never the sidecar.
"""

from profilis import __version__

__all__ = ["__version__"]
