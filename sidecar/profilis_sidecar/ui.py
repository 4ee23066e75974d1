"""The pod dashboard at ``/_profilis``: the library's ``StatsStore`` and page, for all workers.

The receive thread hands each accepted datagram's events to ``PodDashboard`` (one enqueue per
datagram into a small bounded queue); a writer thread feeds them to the ``StatsStore``. At
most ``max_events_per_s`` events a second reach the store: the page is a view for people,
and its cost must never come out of ingestion, which the Prometheus metrics count exactly.
Events left out are counted and shown on the page as sampled out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from profilis.core.async_collector import AsyncCollector
from profilis.core.stats import StatsStore
from profilis.ui import Dashboard, UiResponse

__all__ = ["PodDashboard"]

HeaderGetter = Callable[[str], "str | None"]
#: Datagrams (not events) waiting for the store; a full queue means the store is behind.
_QUEUE_BATCHES = 256


class PodDashboard:
    """Feeds a ``StatsStore`` from ingested events and answers ``/_profilis`` requests."""

    def __init__(
        self,
        health: Callable[[], Mapping[str, object]],
        *,
        auth_token: str | None = None,
        max_events_per_s: float = 20_000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = StatsStore()
        self.stats.attach(health)
        self._dashboard = Dashboard(self.stats, auth_token=auth_token)
        self._rate = float(max_events_per_s)
        # A token bucket of one second's worth: bursts pass whole, sustained floods are cut.
        self._tokens = self._rate
        self._clock = clock
        self._last = clock()
        #: Events not shown because the budget was spent or the queue was full.
        self.sampled_out = 0
        self._queue: AsyncCollector[list[object]] = AsyncCollector(
            self._feed,
            queue_size=_QUEUE_BATCHES,
            batch_max=32,
            flush_interval=0.5,
            drop_oldest=False,
            name="profilis-sidecar-ui",
        )

    def __call__(self, events: list[object]) -> None:
        """Receive thread: keep ``events`` for the page if the budget allows (never blocks)."""
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= len(events) and self._queue.queue_depth < _QUEUE_BATCHES:
            self._tokens -= len(events)
            self._queue.enqueue(events)
        else:
            self.sampled_out += len(events)

    def _feed(self, batches: list[list[object]]) -> None:
        for events in batches:
            self.stats(events)  # type: ignore[arg-type]  # untrusted: the store checks each

    def respond_to(self, method: str, target: str, header: HeaderGetter) -> UiResponse | None:
        """The answer for ``target`` when it lies under ``/_profilis``, else None."""
        return self._dashboard.respond_to(method, target, header)

    def close(self, timeout_s: float) -> None:
        self._queue.close(timeout_s)
