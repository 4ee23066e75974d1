"""A sink for test servers: each process appends its batches to its own JSON-lines file.

Tests read every ``events-<pid>.jsonl`` of the directory, so several workers never write to
one file. Only for tests: the real JSONL exporter lives in ``profilis.exporters``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class JsonLinesSink:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        # The pid is read per batch: a forked worker must not append to its parent's file.
        path = self.directory / f"events-{os.getpid()}.jsonl"
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(event) + "\n" for event in batch))


def read_events(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    events = []
    for path in sorted(Path(directory).glob("events-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            events.append(json.loads(line))
    return events


def wait_for_events(
    directory: str | os.PathLike[str],
    predicate: Callable[[dict[str, Any]], bool],
    count: int = 1,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """The events matching ``predicate``, once at least ``count`` have been written."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in read_events(directory) if predicate(e)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def wait_for_flag(directory: str | os.PathLike[str], name: str, timeout: float = 10.0) -> bool:
    """Block until the test creates ``<directory>/<name>`` (False after ``timeout``)."""
    path = Path(directory) / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
