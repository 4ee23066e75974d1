"""Trace and span id generation (W3C sizes, lowercase hex).

Ids come from the ``random`` module's generator, not ``os.urandom``: ids must be unique, not
secret, and a syscall per id would cost more than the event it labels. ``random`` reseeds
itself in a forked child, so parent and child never hand out the same sequence.
"""

from __future__ import annotations

import random

__all__ = ["new_span_id", "new_trace_id", "span_id"]

_getrandbits = random.getrandbits


def new_span_id() -> str:
    """Return a new 16-character lowercase hex span id (never all zeros)."""
    # `or 1` keeps the invalid all-zero id out at the cost of one comparison.
    return (_getrandbits(64) or 1).to_bytes(8, "big").hex()


def new_trace_id() -> str:
    """Return a new 32-character lowercase hex trace id (never all zeros)."""
    return (_getrandbits(128) or 1).to_bytes(16, "big").hex()


#: The Profilis 1.x name: ``profilis.runtime.span_id()`` returns a new span id.
span_id = new_span_id
