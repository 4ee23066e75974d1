"""The root of every exception Profilis raises on purpose.

Callers catch ``ProfilisError`` to handle any of ours; each subclass also derives from the
built-in it refines (a bad setting is still a ``ValueError``), so plain code keeps working.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ProfilisError", "SchemaError"]


class ProfilisError(Exception):
    """Base class of all Profilis errors."""


class ConfigError(ProfilisError, ValueError):
    """A setting (environment variable or constructor argument) has a value we do not accept.

    The message names the setting and the accepted values, e.g.
    ``PROFILIS_QUEUE_SIZE must be an integer in [1, 10000000], got '0'``.
    """

    def __init__(self, setting: str, accepted: str, got: object) -> None:
        self.setting = setting
        self.accepted = accepted
        self.got = got
        super().__init__(f"{setting} must be {accepted}, got {got!r}")


class SchemaError(ProfilisError, ValueError):
    """An incoming event does not follow the event schema (v2, or v1 that can be upgraded)."""
