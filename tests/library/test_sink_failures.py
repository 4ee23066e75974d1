"""What a sink raises is logged, with its traceback, at most once per interval: a user's own
sink, and the JSONL exporter on a full disk (ENOSPC), which before left only a later
"dropped N events" line, if any.

The rate limit itself runs against an injected clock (``SinkSlot``, the collector's
per-sink delivery). End to end, as real processes: a collector with a user's sink, and the
sidecar command forwarding to JSONL on a 64 KiB tmpfs (mounted in a user namespace: skipped
where the machine does not allow one).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profilis.core._delivery import FAILURE_LOG_INTERVAL_S, Delivery, SinkSlot
from profilis.exporters.collector import CollectorExporter
from tests.sidecar.helpers import scrape, short_dir, sidecar_argv, value, wait_for
from tests.support.processes import free_port, run_process

USER_APP = textwrap.dedent(
    """
    import json, logging, sys, time
    from profilis.core.async_collector import AsyncCollector

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    class Sink:
        name = "mine"
        calls = 0

        def __call__(self, batch):
            Sink.calls += 1
            if Sink.calls <= 30:
                raise ValueError(f"user bug on call {Sink.calls}")

    collector = AsyncCollector(
        Sink(), flush_interval=0.005, retry_initial_backoff_s=0.005, retry_max_backoff_s=0.01
    )
    deadline = time.monotonic() + 10
    while Sink.calls <= 30 and time.monotonic() < deadline:
        collector.enqueue({"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "f"})
        time.sleep(0.002)
    collector.close(2)
    print(json.dumps({"calls": Sink.calls, "errors": collector.health().export_errors}))
    """
)


def test_a_users_failing_sink_is_logged_once_with_its_traceback_then_its_recovery() -> None:
    done = subprocess.run(
        [sys.executable, "-c", USER_APP], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log = done.stderr

    assert result["errors"] == 30  # thirty failed calls within a second or so...
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    # ...one warning (the interval is a minute), with the exception and where it came from
    assert warnings == [
        "WARNING profilis.collector: profilis: sink mine failed (ValueError: user bug on call 1);"
        " retrying in 0.01 s"
    ]
    assert log.count("Traceback (most recent call last)") == 1
    assert 'File "<string>", line 14, in __call__' in log  # the user's own raise
    assert "INFO profilis.collector: profilis: sink mine recovered (30 failed calls so far)" in log


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def failing_slot(
    sink: object, clock: Clock, *, v1_hint: bool = True
) -> tuple[SinkSlot[int], list[bool]]:
    settled: list[bool] = []
    slot: SinkSlot[int] = SinkSlot(
        sink,  # type: ignore[arg-type]
        settle=lambda delivery, delivered: settled.append(delivered),
        pending_capacity=1_000,
        initial_backoff_s=1.0,
        max_backoff_s=8.0,
        v1_hint=v1_hint,
        clock=clock,
    )
    return slot, settled


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "profilis.collector"]


def test_the_first_failure_is_logged_at_once_then_one_line_per_interval_with_the_rest_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    calls: list[int] = []

    def sink(batch: list[int]) -> None:
        calls.append(len(batch))
        raise ConnectionRefusedError(f"collector down (call {len(calls)})")

    slot, settled = failing_slot(sink, clock)
    with caplog.at_level(logging.WARNING, logger="profilis.collector"):
        slot.offer(Delivery([1, 2], 1))
        for _ in range(5):  # five more failures within the interval: counted, not logged
            clock.now += FAILURE_LOG_INTERVAL_S / 6
            slot.retry(clock.now)
        assert len(warnings_of(caplog)) == 1
        clock.now += FAILURE_LOG_INTERVAL_S / 6  # a full interval after the first line
        slot.retry(clock.now)

    first, second = warnings_of(caplog)
    assert first.getMessage() == (
        f"profilis: sink {sink.__qualname__} failed (ConnectionRefusedError: "
        "collector down (call 1)); retrying in 1.00 s"
    )
    assert second.getMessage().endswith(
        "failed (ConnectionRefusedError: collector down (call 7)); "
        "5 more failures since the last report; retrying in 8.00 s"
    )
    for record in (first, second):  # with the traceback that points into the sink
        assert record.levelno == logging.WARNING and record.exc_info is not None
        assert record.exc_info[2] is not None
        assert record.exc_info[2].tb_next is not None  # into the user's sink
    assert len(calls) == 7 and settled == []  # still parked, still retried: never raised


def test_each_sink_has_its_own_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    class Down:
        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self, batch: list[int]) -> None:
            raise TimeoutError("no answer")

    with caplog.at_level(logging.WARNING, logger="profilis.collector"):
        for name in ("otlp", "jsonl"):
            slot, _ = failing_slot(Down(name), clock)
            slot.offer(Delivery([1], 1))
            clock.now += 1.5
            slot.retry(clock.now)

    assert [r.getMessage().split(" failed")[0] for r in warnings_of(caplog)] == [
        "profilis: sink otlp",
        "profilis: sink jsonl",
    ]


def test_a_failure_that_looks_like_a_1x_sink_suggests_v1_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def old_sink(batch: list[dict[str, object]]) -> None:
        for event in batch:
            event["trace_id"]  # 1.x put it in every event

    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="profilis.collector"):
        failing_slot(old_sink, clock)[0].offer(Delivery([{"kind": "FN"}], 1))  # type: ignore[list-item]
        converting, _ = failing_slot(old_sink, clock, v1_hint=False)
        converting.offer(Delivery([{"kind": "FN"}], 1))  # type: ignore[list-item]

    hinted, plain = (r.getMessage() for r in warnings_of(caplog))
    assert "(KeyError: 'trace_id')" in hinted
    assert hinted.endswith(
        'if this sink was written for Profilis 1.x events (kind "REQ", error as a bool), '
        "create the collector with v1_events=True (see docs/migration.md)"
    )
    assert "Profilis 1.x" not in plain  # already converting: the advice would be wrong


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_dir() as path:
        yield path


@pytest.mark.skipif(
    not _can_mount_tmpfs(), reason="needs unshare -rm and tmpfs (a user namespace) for a full disk"
)
def test_a_full_disk_is_logged_as_enospc_with_the_file_once(tmp: Path) -> None:
    out = tmp / "out"
    out.mkdir()
    port = free_port()
    # The sidecar forwarding to JSONL on a 64 KiB disk of its own (its mount namespace).
    mount = f'mount -t tmpfs -o size=64k tmpfs {out} && exec "$@"'
    argv = ["unshare", "-rm", "sh", "-c", mount, "sh"]
    argv += sidecar_argv(tmp / "c.sock", port, f"--forward=jsonl:{out}")
    with run_process(argv, port=port) as sidecar:
        agent = CollectorExporter(f"unix://{tmp}/c.sock", heartbeat_interval_s=0)
        event = {"kind": "FN", "ts_ns": time.time_ns(), "dur_ns": 1000, "fn": "f" * 50}
        try:
            # About 110 bytes a line: 64 KiB are full after some 600 events.
            for _ in range(20):
                agent([event] * 100)
                time.sleep(0.02)  # pace the sends: the agent's socket buffer is small
        finally:
            agent.close()
        samples = wait_for(
            lambda: scrape(port),
            lambda s: value(s, "profilis_export_errors_total", exporter="jsonl") >= 3,
            timeout=15,
        )
        log = wait_for(sidecar.output, lambda text: "ENOSPC" in text, timeout=10)

    assert value(samples, "profilis_export_errors_total", exporter="jsonl") >= 3
    failures = [line for line in log.splitlines() if "sink jsonl failed" in line]
    assert len(failures) == 1, log[-3000:]
    assert "OSError: [ENOSPC] No space left on device" in failures[0]
    assert f"{out}/" in failures[0]  # the file it could not write
    assert log.count("Traceback (most recent call last)") == 1
