"""A live collector whose sink is a list, for the database integration tests."""

from __future__ import annotations

from typing import Any

from profilis import AsyncCollector, Emitter


class EventLog:
    """A running collector and the events it delivered."""

    def __init__(self) -> None:
        self._delivered: list[dict[str, Any]] = []
        self.collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
            self._delivered.extend, flush_interval=0.01, name="test-db"
        )
        self.emitter = Emitter(self.collector)

    def events(self) -> list[dict[str, Any]]:
        """Everything emitted so far, once the writer has delivered it."""
        assert self.collector.flush(timeout=5.0), "the collector did not drain in 5 s"
        return list(self._delivered)

    def close(self) -> None:
        self.collector.close(timeout=5.0)
