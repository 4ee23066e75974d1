"""Trace and span id generation (W3C sizes, lowercase hex).

Ids are cut from one ``os.urandom`` read of 256 ids at a time and handed out by ``list.pop``
(atomic under the GIL, so no lock): a syscall or a hex conversion per id would cost more than
the event it labels. A forked child empties the pool, so parent and child never share ids.
"""

from __future__ import annotations

import os

__all__ = ["new_span_id", "new_trace_id", "span_id"]

_POOL_SIZE = 256
_ZERO_SPAN = "0" * 16
_ZERO_BYTES = bytes(8)

_pool: list[str] = []
#: ``pool_pop()`` returns an id or raises IndexError (then call ``refill_ids()``); exported for
#: the decorator's hot path, which cannot afford the extra call of ``new_span_id``.
pool_pop = _pool.pop


def refill_ids() -> str:
    """Refill the pool from one random read and return one new id."""
    raw = os.urandom(8 * _POOL_SIZE)
    # hex() puts a space after every 8 bytes and split(" ") cuts there: both run in C, where
    # a Python-level slice per id cost more than the rest of an un-traced decorated call.
    fresh = raw.hex(" ", 8).split(" ")
    # An all-zero id is invalid in W3C Trace Context (odds 2**-64, but free to exclude). The
    # bytes test is one C scan; the list is searched only when it hits (aligned or not).
    if _ZERO_BYTES in raw:
        while _ZERO_SPAN in fresh:
            fresh.remove(_ZERO_SPAN)
    _pool.extend(fresh)
    return _pool.pop()


def new_span_id() -> str:
    """Return a new 16-character lowercase hex span id (never all zeros)."""
    try:
        return pool_pop()
    except IndexError:
        return refill_ids()


def new_trace_id() -> str:
    """Return a new 32-character lowercase hex trace id (never all zeros)."""
    return new_span_id() + new_span_id()


#: The Profilis 1.x name: ``profilis.runtime.span_id()`` returns a new span id.
span_id = new_span_id

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)
