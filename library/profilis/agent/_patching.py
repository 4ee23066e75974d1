"""Replacing one method of a framework class by a wrapper, once, and saying so when it can't.

The patches of ``_frameworks`` and ``_servers`` all go through ``wrap_method``: the wrapper is
marked, so a second bootstrap or a re-imported module never wraps twice, and a method that a
framework version no longer has raises ``UnsupportedVersionError`` with the name to report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from profilis.errors import ProfilisError

__all__ = ["UnsupportedVersionError", "is_wrapped", "wrap_method"]

#: Set on every wrapper the agent installs.
_MARK: Final = "__profilis_agent__"

Method = Callable[..., Any]


class UnsupportedVersionError(ProfilisError):
    """A framework lacks what the agent patches (a version the agent does not know)."""


def wrap_method(owner: type, name: str, make_wrapper: Callable[[Method], Method]) -> bool:
    """Replace ``owner.name`` (defined on ``owner`` itself) by ``make_wrapper(original)``.

    Returns False when it is already the agent's wrapper. The wrapper gets the original's
    name and docstring, and ``__wrapped__`` pointing at it, as ``functools.wraps`` gives.
    """
    original = owner.__dict__.get(name)
    if original is None or not callable(original):
        where = f"{owner.__module__}.{owner.__qualname__}.{name}"
        raise UnsupportedVersionError(f"{where} not found (a version the agent does not know)")
    if is_wrapped(original):
        return False
    wrapper = functools.wraps(original)(make_wrapper(original))
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)
    return True


def is_wrapped(method: object) -> bool:
    """True when ``method`` is a wrapper the agent installed."""
    return bool(getattr(method, _MARK, False))
