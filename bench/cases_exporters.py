"""Exporter rows: JSONL export end to end (one busy producer -> collector -> files on disk).

``jsonl_export`` runs in our venv, ``jsonl_export_peer`` in Profilis 1.0.0's (by
``bench.worker``). Unlike the drain rows, the sink does real work: encode every event and
write it to rotating files. The rate is events in / time until the collector is drained;
events are then counted back from the final files, so "0 lost" is what a reader finds.
"""

from __future__ import annotations

import gc
import gzip
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.registry import CaseResult, Settings
from bench.workload import DUR_NS, ROUTE, STATUS, scaled

__all__ = ["jsonl_export", "jsonl_export_peer"]

#: Events per run in the full bench: long enough for ~10 size rotations at the default size.
JSONL_EVENTS = 1_000_000
#: The peer takes a lock per event (see ``bench.workload``): fewer events keep the run short.
JSONL_EVENTS_PEER = 200_000
#: Both sides rotate at 10 MB (the peer's default and ours).
ROTATE_BYTES = 10_000_000


def _lines_on_disk(directory: Path, header_lines: int) -> tuple[int, int]:
    """(event lines, files) in the final files, ``header_lines`` per file left out."""
    events = files = 0
    for path in directory.iterdir():
        if path.name.endswith(".jsonl"):
            data = path.read_bytes()
        elif path.name.endswith(".jsonl.gz"):
            data = gzip.decompress(path.read_bytes())
        else:
            continue
        files += 1
        events += data.count(b"\n") - header_lines
    return events, files


def _one_run(events: int) -> dict[str, Any]:
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.runtime import use_span

    with tempfile.TemporaryDirectory(prefix="profilis-bench-") as tmp:
        directory = Path(tmp)
        exporter = JSONLExporter(directory, service="bench", rotate_bytes=ROTATE_BYTES)
        # Room for every event: the row measures export speed, not the drop policy.
        collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
            exporter, queue_size=events, name="bench-jsonl"
        )
        emit = Emitter(collector).emit_http
        try:
            gc.collect()
            # Inside a span, as in a request: every event carries its trace and span ids.
            with use_span():
                start = time.perf_counter_ns()
                for _ in itertools.repeat(None, events):
                    emit(ROUTE, STATUS, DUR_NS)
                produced = time.perf_counter_ns()
                collector.flush(timeout=120.0)
                end = time.perf_counter_ns()
        finally:
            collector.close(timeout=30.0)  # publishes the last file
        on_disk, files = _lines_on_disk(directory, header_lines=1)
        health = collector.health()
    return {
        "events": events,
        "on_disk": on_disk,
        "dropped": health.dropped_total,
        "elapsed_ns": end - start,
        "producer_ns": produced - start,
        "events_per_s": events / (end - start) * 1e9,
        "files": files,
        "bytes": exporter.bytes_written,
    }


def _one_peer_run(events: int) -> dict[str, Any]:
    from bench.cases_peer import _peer

    with tempfile.TemporaryDirectory(prefix="profilis-bench-peer-") as tmp:
        directory = Path(tmp)
        exporter = _peer("exporters.jsonl").JSONLExporter(str(directory), rotate_bytes=ROTATE_BYTES)
        collector = _peer("core.async_collector").AsyncCollector(
            exporter, queue_size=events, name="bench-peer-jsonl"
        )
        emit = _peer("core.emitter").Emitter(collector).emit_req
        gc.collect()
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, events):
            emit(ROUTE, STATUS, DUR_NS)
        produced = time.perf_counter_ns()
        collector.close(timeout=120.0)  # the peer has no flush: close delivers everything
        end = time.perf_counter_ns()
        exporter.close()  # publishes the last file
        on_disk, files = _lines_on_disk(directory, header_lines=0)  # 1.0.0 writes no header
        dropped = int(collector.dropped_oldest)
    return {
        "events": events,
        "on_disk": on_disk,
        "dropped": dropped,
        "elapsed_ns": end - start,
        "producer_ns": produced - start,
        "events_per_s": events / (end - start) * 1e9,
        "files": files,
    }


def jsonl_export(settings: Settings) -> CaseResult:
    return _result(_one_run, JSONL_EVENTS, settings)


def jsonl_export_peer(settings: Settings) -> CaseResult:
    return _result(_one_peer_run, JSONL_EVENTS_PEER, settings)


def _result(
    one_run: Callable[[int], dict[str, Any]], events: int, settings: Settings
) -> CaseResult:
    events = scaled(events, settings.drain_scale)
    runs = [one_run(events) for _ in range(settings.drain_repeat)]
    rates = [run["events_per_s"] for run in runs]
    return CaseResult(
        statistics.median(rates),
        "events/s",
        rates,
        {
            "events": events,
            # Every run, not just the median one: a single lost event fails the target.
            # Lost = not found in the final files, whatever the cause (queue drop, overwrite).
            "dropped": sum(run["events"] - run["on_disk"] for run in runs),
            "dropped_queue": sum(run["dropped"] for run in runs),
            "runs": runs,
        },
    )
