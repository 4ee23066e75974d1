"""Fixtures for the adapter tests: a live collector whose sink is a list, fresh per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from profilis import AsyncCollector, Emitter


class EventLog:
    """A running collector and the events it delivered."""

    def __init__(self) -> None:
        self._delivered: list[dict[str, Any]] = []
        self.collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
            self._delivered.extend, flush_interval=0.01, name="test-adapters"
        )
        self.emitter = Emitter(self.collector)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Everything emitted so far (waits for the writer), optionally of one kind."""
        assert self.collector.flush(timeout=5.0), "the collector did not drain in 5 s"
        return [e for e in self._delivered if kind is None or e["kind"] == kind]

    def one(self, kind: str = "HTTP") -> dict[str, Any]:
        found = self.events(kind)
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def log() -> Iterator[EventLog]:
    events = EventLog()
    try:
        yield events
    finally:
        events.collector.close(timeout=5.0)
