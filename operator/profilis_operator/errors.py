"""The operator's exceptions, under one root that itself derives from ``ProfilisError``."""

from __future__ import annotations

from profilis.errors import ProfilisError

__all__ = ["InvalidConfigError", "OperatorError", "PodSpecError"]


class OperatorError(ProfilisError):
    """Base class of the errors the operator raises on purpose."""


class InvalidConfigError(OperatorError, ValueError):
    """A ProfilisConfig spec (or the operator's defaults) holds a value Profilis refuses.

    The message names the field by its path in the spec, e.g. ``collector.batchMax``.
    """


class PodSpecError(OperatorError, ValueError):
    """A pod spec is not something the pod runner can run (no containers, an unknown image)."""
