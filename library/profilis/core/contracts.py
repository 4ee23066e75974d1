"""The two contracts every pipeline stage follows: sinks (exporters) and processors.

A sink takes a batch and returns nothing; raising means "not delivered, try again later".
A processor takes a batch and returns the batch to pass on (possibly fewer events).
Both run on the collector's writer thread, never on the application's.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Batch", "ClosableSink", "Processor", "Sink"]

T = TypeVar("T")

#: What flows through the pipeline: event dicts as defined in ``profilis.schema``.
Batch = list[dict[str, Any]]


class Sink(Protocol[T]):
    """Delivers one batch. Raise to report failure; the collector retries with backoff."""

    def __call__(self, batch: list[T], /) -> object: ...


@runtime_checkable
class ClosableSink(Protocol):
    """A sink with resources to release; ``close`` is called once, from the writer thread."""

    def close(self) -> None: ...


class Processor(Protocol[T]):
    """Transforms one batch (enrich, redact, sample). Returning fewer events filters them."""

    def __call__(self, batch: list[T], /) -> list[T]: ...
