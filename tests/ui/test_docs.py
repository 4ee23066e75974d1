"""docs/ui.md documents metrics.json: its example has exactly the keys a real snapshot has."""

from __future__ import annotations

import json
import re
from typing import Any

from profilis import AsyncCollector
from profilis.core.stats import StatsStore
from tests.adapters.servers import REPO_ROOT

DOC = REPO_ROOT / "docs" / "ui.md"
STATS_KEYS = {"…stats"}


def documented() -> dict[str, Any]:
    (example,) = [
        block
        for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
        if '"schema_version"' in block
    ]
    document: dict[str, Any] = json.loads(example)
    return document


def shape(value: Any, stats_keys: set[str]) -> Any:
    """Keys all the way down; a "…stats" placeholder stands for the stats object's keys."""
    if isinstance(value, dict):
        keys = set(value)
        if keys & STATS_KEYS:
            keys = (keys - STATS_KEYS) | stats_keys
        # The placeholder's keys hold plain numbers, like the stats object's.
        return {k: shape(value[k], stats_keys) if k in value else "value" for k in sorted(keys)}
    if isinstance(value, list):
        return [shape(value[0], stats_keys)] if value else []
    return "value"


def real_snapshot() -> dict[str, Any]:
    stats = StatsStore()
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(stats, flush_interval=0.01)
    try:
        stats.attach(collector)
        for event in [
            {
                "kind": "HTTP",
                "dur_ns": 10**6,
                "method": "GET",
                "route": "/u",
                "status": 500,
                "error": "ValueError",
                "trace_id": "1" * 32,
            },
            {"kind": "FN", "dur_ns": 10**6, "fn": "f"},
            {"kind": "DB", "dur_ns": 10**6, "query": "SELECT 1", "db_vendor": "sqlite"},
        ]:
            collector.enqueue(event)
        assert collector.flush(5.0)
        return stats.snapshot()
    finally:
        collector.close(5.0)


def test_the_documented_shape_is_the_served_shape():
    real = real_snapshot()
    stats_keys = set(real["totals"]["http"])
    doc = documented()
    assert doc["schema_version"] == real["schema_version"]
    assert shape(doc, stats_keys) == shape(real, stats_keys)


def test_every_stats_field_is_named_in_the_docs():
    text = DOC.read_text()
    for key in real_snapshot()["totals"]["http"]:
        assert f"`{key}`" in text, key
