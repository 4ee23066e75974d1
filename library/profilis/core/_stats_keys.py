"""Caps on the keys (routes, functions, queries...) that own a row in ``StatsStore``'s window.

A key is admitted while there is room and leaves when the newest time slot it appears in
leaves the window; past the cap, new keys are redirected to one overflow key, counted.
This is what bounds the store's memory whatever names the traffic brings.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["KeyCap"]

K = TypeVar("K", bound=Hashable)


class KeyCap(Generic[K]):
    """Which keys own a row in the window; new keys past ``limit`` share the OVERFLOW row."""

    __slots__ = ("last_epoch", "limit", "overflow_key", "overflowed")

    def __init__(self, limit: int, overflow_key: K) -> None:
        self.limit = limit
        self.overflow_key = overflow_key
        #: key -> the newest slot it appears in; a key leaves when that slot expires.
        self.last_epoch: dict[K, int] = {}
        #: Events that went to the overflow row, since the store started.
        self.overflowed = 0

    def admit(self, key: K, epoch: int) -> K:
        last = self.last_epoch.get(key)
        if last is None:
            if len(self.last_epoch) >= self.limit:
                self.overflowed += 1
                return self.overflow_key
            self.last_epoch[key] = epoch
        elif last < epoch:
            self.last_epoch[key] = epoch
        return key

    def expire(self, oldest_epoch: int) -> None:
        stale = [key for key, epoch in self.last_epoch.items() if epoch < oldest_epoch]
        for key in stale:
            del self.last_epoch[key]
