"""Profilis 1.x names kept for migrating users: the deprecation warning they all give.

The 1.x compatibility modules (``sampling``, ``asgi.middleware``, ``fastapi.ui``...) and the
1.x spellings kept on 2.0 modules warn through here, so every warning names the 2.0
replacement in the same words (docs/migration.md lists them all).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

__all__ = ["deprecated_getattr", "warn_deprecated"]


def warn_deprecated(old: str, replacement: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated. The default ``stacklevel`` points at the caller of
    the function that calls this one: the user's line, where Python dedups the warning."""
    warnings.warn(
        f"{old} is deprecated; use {replacement}", DeprecationWarning, stacklevel=stacklevel
    )


def deprecated_getattr(
    module: str, names: Mapping[str, tuple[Callable[[], object], str]]
) -> Callable[[str], object]:
    """A module ``__getattr__`` (PEP 562) for deprecated names: ``names`` maps each to a
    loader of its value and the replacement to name. Importing the module gives no warning;
    importing or reading one of these names does, pointing at that line."""

    def __getattr__(name: str) -> object:
        entry = names.get(name)
        if entry is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        load, replacement = entry
        # The default stacklevel lands on the frame doing `from module import name`.
        warn_deprecated(f"{module}.{name}", replacement)
        return load()

    return __getattr__
