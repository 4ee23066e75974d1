"""Fork safety: children of a process whose threads are emitting never hang, and each child's
events are exported by the child's own writer thread (as under gunicorn or multiprocessing)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about fork() in a threaded process: that is exactly the situation
    # this test sets up on purpose.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

FORKS = 1000
CHILD_EVENTS = 50
CONCURRENT_CHILDREN = 16
CHILD_DEADLINE_S = 20.0

# Child exit codes.
OK, WRONG_COUNT, WRONG_WRITER, CRASHED = 0, 3, 4, 5


def _child_main(
    collector: AsyncCollector[dict[str, object]], exports: list[tuple[int, str, int]]
) -> int:
    try:
        exports.clear()  # the list was copied from the parent; only this process's exports count
        emitter = Emitter(collector)
        for i in range(CHILD_EVENTS):
            emitter.emit_fn("child", i)
        if not collector.flush(timeout=CHILD_DEADLINE_S / 2):
            return WRONG_COUNT
        mine = [e for e in exports if e[0] == os.getpid()]
        if sum(n for _, _, n in mine) != CHILD_EVENTS:
            return WRONG_COUNT
        writer_names = {name for _, name, _ in mine}
        if writer_names != {"fork-test-writer"} or threading.current_thread().name in writer_names:
            return WRONG_WRITER
        health = collector.health()
        if health.enqueued != CHILD_EVENTS or health.exported != CHILD_EVENTS:
            return WRONG_COUNT
        return OK
    except BaseException:
        return CRASHED


def test_a_thousand_forks_while_threads_emit_never_hang_and_export_in_the_child():
    exports: list[tuple[int, str, int]] = []

    def sink(batch: list[dict[str, object]]) -> None:
        exports.append((os.getpid(), threading.current_thread().name, len(batch)))
        del exports[:-1000]  # bounded in the parent, which runs for a while

    collector: AsyncCollector[dict[str, object]] = AsyncCollector(
        sink, queue_size=4096, batch_max=16, flush_interval=0.005, name="fork-test-writer"
    )
    emitter = Emitter(collector)
    stop = threading.Event()

    def emit_forever() -> None:
        while not stop.is_set():
            emitter.emit_http("/busy", 200, 1000)

    emitters = [threading.Thread(target=emit_forever, daemon=True) for _ in range(2)]
    for t in emitters:
        t.start()

    running: dict[int, float] = {}
    results: dict[int, int] = {}
    hung = 0
    try:
        forked = 0
        while forked < FORKS or running:
            while forked < FORKS and len(running) < CONCURRENT_CHILDREN:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - runs in the child
                    os._exit(_child_main(collector, exports))
                running[pid] = time.monotonic() + CHILD_DEADLINE_S
                forked += 1
            for pid, deadline in list(running.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    results[pid] = os.waitstatus_to_exitcode(status)
                    del running[pid]
                elif time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung += 1
                    del running[pid]
            time.sleep(0.001)
    finally:
        stop.set()
        for t in emitters:
            t.join(5)
        collector.close(timeout=5)

    assert hung == 0, f"{hung} of {FORKS} children hung"
    codes = sorted(results.values())
    assert len(codes) == FORKS
    assert codes == [OK] * FORKS, {code: codes.count(code) for code in set(codes)}
    # The parent kept working all along.
    health = collector.health()
    assert health.exported > 0
    assert health.enqueued == health.exported + health.dropped_total + health.queue_depth
