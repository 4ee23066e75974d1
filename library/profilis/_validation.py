"""Argument checks shared by constructors and by ``profilis.config``.

Validation happens once, when something is configured, never on the hot path. Every check
raises ``ConfigError`` naming the setting and the accepted range.
"""

from __future__ import annotations

import math

from profilis.errors import ConfigError

__all__ = ["check_bool", "check_float", "check_int"]


def check_int(setting: str, value: object, *, minimum: int, maximum: int) -> int:
    """Return ``value`` if it is an integer in [minimum, maximum] (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(setting, f"an integer in [{minimum}, {maximum}]", value)
    return value


def check_float(
    setting: str,
    value: object,
    *,
    minimum: float,
    maximum: float,
    min_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float if it is a finite number in the range.

    ``min_inclusive=False`` makes the lower bound open, for things like intervals that must
    be strictly positive.
    """
    low = "[" if min_inclusive else "("
    accepted = f"a number in {low}{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(setting, accepted, value)
    number = float(value)
    too_low = number < minimum if min_inclusive else number <= minimum
    if math.isnan(number) or too_low or number > maximum:
        raise ConfigError(setting, accepted, value)
    return number


def check_bool(setting: str, value: object) -> bool:
    """Return ``value`` if it is a real bool (``1`` or ``"yes"`` are not silently accepted)."""
    if not isinstance(value, bool):
        raise ConfigError(setting, "True or False", value)
    return value
