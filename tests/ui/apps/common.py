"""What both dashboard test apps share: the token, and the StatsStore + collector wiring.

Configured like the adapter test apps (``tests.adapters.servers.serve`` sets the variables):
events also go to a JSON-lines file per process, so a test can compare ``metrics.json``
with the exact durations the server recorded.
"""

from __future__ import annotations

import os
from typing import Any

from profilis import AsyncCollector, Emitter
from profilis.core.stats import StatsStore
from tests.adapters.apps.sink import JsonLinesSink

#: The token of the protected dashboard mount (``/_profilis_private``).
TOKEN = "ui-test-token-0123456789"


def pipeline() -> tuple[StatsStore, AsyncCollector[dict[str, Any]], Emitter]:
    stats = StatsStore(window_minutes=15, max_errors=50, bucket_seconds=10, series_seconds=1)
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
        [JsonLinesSink(os.environ["PROFILIS_TEST_EVENTS_DIR"]), stats], flush_interval=0.02
    )
    stats.attach(collector)
    return stats, collector, Emitter(collector)
