"""Profilis: telemetry cheap enough to leave on, for Python web services.

The package imports only the standard library; integrations live in their own modules.
"""

from profilis._version import __version__

__all__ = ["__version__"]
