"""The single source of the package version (read by the build and by the wire envelope)."""

__version__ = "2.0.0.dev0"
