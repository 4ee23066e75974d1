"""What Profilis' console scripts share: a missing extra reported as one line, not a traceback.

``profilis-sidecar`` and ``profilis-operator`` import their third-party dependencies (the
``sidecar`` and ``operator`` extras) inside ``requires_extra``; a plain ``pip install`` of
Profilis then ends with the ``pip install`` to run and exit status 2, like a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Final, NoReturn

__all__ = ["MISSING_EXTRA_EXIT_STATUS", "CommandParser", "requires_extra"]

#: The exit status of a command that cannot run as installed (the same as a usage error).
MISSING_EXTRA_EXIT_STATUS: Final = 2
# A missing module of our own is a broken install or a bug: its traceback is the useful part.
_FIRST_PARTY: Final = frozenset({"profilis", "profilis_sidecar", "profilis_operator"})


@contextlib.contextmanager
def requires_extra(command: str, extra: str) -> Iterator[None]:
    """Turn a third-party ``ModuleNotFoundError`` raised inside into one line on stderr and
    ``SystemExit(2)``, e.g. ``profilis-operator: missing dependency 'kopf'; install it with:
    pip install 'profilis[operator]'``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if not top or top in _FIRST_PARTY:
            raise
        print(
            f"{command}: missing dependency {top!r}; install it with: "
            f"pip install 'profilis[{extra}]'",
            file=sys.stderr,
        )
        raise SystemExit(MISSING_EXTRA_EXIT_STATUS) from None


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose error is one line, without the whole usage before it.

    The usage of a command with twenty flags buried the one line that matters; the error
    names the flag and its accepted forms, and ``--help`` lists the rest. Exit status 2,
    as argparse's.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")
