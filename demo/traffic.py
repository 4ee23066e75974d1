"""Realistic load on the demo shop: reads, writes, a slow report, flaky payments, some 404s.

A few client threads pick a route by weight, pace themselves to a total rate and count what
they sent per route and status class; the live display reads those counts. The backpressure
mode sends this same traffic: what changes is the sidecar, throttled (``demo.pod.Backpressure``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["ROUTES", "Traffic"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as the shop's agent reports it (Flask's rule syntax)
    weight: int
    path: Callable[[random.Random], str]
    json: dict[str, object] | None = None


ROUTES = (
    Route("GET", "/orders", 30, lambda r: "/orders"),
    # One id in ten does not exist: 404s are part of real traffic.
    Route("GET", "/orders/<int:order_id>", 35,
          lambda r: f"/orders/{r.randint(1, 100) if r.random() > 0.1 else 99999999}"),
    Route("POST", "/orders", 12, lambda r: "/orders", {"item": "coffee", "quantity": 2}),
    Route("GET", "/reports/revenue", 5, lambda r: "/reports/revenue"),
    Route("POST", "/payments", 18, lambda r: "/payments"),
)  # fmt: skip


@dataclass
class Traffic:
    """Client threads against ``base_url`` at about ``rate_per_s`` requests in total."""

    base_url: str
    rate_per_s: float = 60.0
    clients: int = 4
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, status class)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"demo-traffic-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def total(self) -> int:
        with self._lock:
            return sum(self.sent.values())

    def _run(self, index: int) -> None:
        chooser = random.Random(index)
        interval_s = self.clients / self.rate_per_s
        weights = [route.weight for route in ROUTES]
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                route = chooser.choices(ROUTES, weights)[0]
                try:
                    response = client.request(route.method, route.path(chooser), json=route.json)
                    outcome = f"{response.status_code // 100}xx"
                except httpx.HTTPError:
                    outcome = "failed"  # the app restarting or stopping: counted, not fatal
                with self._lock:
                    self.sent[(f"{route.method} {route.template}", outcome)] += 1
                next_at += interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
