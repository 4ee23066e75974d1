"""Profilis 1.0's documented set-up, shared by its Flask and FastAPI entry modules: an
AsyncCollector draining into its JSONL exporter (one file per worker process, in
BENCH_APP_SINK_DIR, which the harness counts), and its SQLAlchemy engine hooks.

Imported only by the Profilis 1.0 venv's interpreter (.bench/app-profilis1).
"""

import os
from typing import Any

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.exporters.jsonl import JSONLExporter
from profilis.sqlalchemy.instrumentation import instrument_engine


def collector_for_this_worker() -> AsyncCollector[dict[str, Any]]:
    # Workers share the folder, so each writes its own file (the default name would collide).
    pid = os.getpid()
    sink = JSONLExporter(
        os.environ["BENCH_APP_SINK_DIR"],
        prefix=f"profilis-{pid}",
        active_name=f"profilis-{pid}-active.jsonl.tmp",
    )
    return AsyncCollector(sink)


def instrument_database(engine: Any, collector: AsyncCollector[dict[str, Any]]) -> None:
    instrument_engine(engine, Emitter(collector))
