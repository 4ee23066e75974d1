"""Ctrl-C reaches the demo alone: while it runs, it is the terminal's foreground process group.

A terminal sends Ctrl-C's SIGINT to its whole foreground group, which under ``make demo``
holds make too. GNU make answers SIGINT by killing itself with it once its child is done
("make: *** [Makefile:NN: demo] Interrupt", status 130), whatever the child did. Job-control
shells avoid this by giving each job its own group and the terminal to that group; the demo
does the same for itself, and gives the terminal back before it exits, so make sees a child
that exited 0 and exits 0. Only when started from a terminal and in its foreground; otherwise
(a pipe, a test, ``make demo &``) nothing changes. The children the demo starts have their own
sessions (``demo.processes``) and never see the terminal's signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

__all__ = ["foreground_group"]


def _set_foreground(fd: int, pgrp: int) -> None:
    # From a background group tcsetpgrp() raises SIGTTOU, which would stop the process.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgrp)
    finally:
        signal.signal(signal.SIGTTOU, previous)


@contextlib.contextmanager
def foreground_group() -> Iterator[bool]:
    """Run the block as the terminal's own foreground group; yields whether it took it."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else -1
    try:
        shared = fd >= 0 and os.tcgetpgrp(fd) == os.getpgrp() != os.getpid()
    except OSError:  # stdin is a terminal, but not the one this process is controlled by
        shared = False
    if not shared:
        yield False
        return
    previous_group = os.getpgrp()
    os.setpgid(0, 0)
    try:
        _set_foreground(fd, os.getpgrp())
    except OSError:
        os.setpgid(0, previous_group)  # back where Ctrl-C reaches it
        yield False
        return
    # Ctrl-Z would stop the demo alone, and make, still waiting, would hold the shell.
    previous_tstp = signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    try:
        yield True
    finally:
        signal.signal(signal.SIGTSTP, previous_tstp)
        with contextlib.suppress(OSError):  # make has gone: the shell takes the terminal back
            _set_foreground(fd, previous_group)
