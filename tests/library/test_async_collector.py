"""AsyncCollector: batching, drop accounting, failing sinks, processors, fan-out, shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.errors import ConfigError


class RecordingSink:
    """Keeps every batch; can be told to block (to fill the queue) or to fail N times."""

    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.calls = 0
        self.fail_times = fail_times
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.closed = 0

    def __call__(self, batch: list[int]) -> None:
        self.entered.set()
        self.gate.wait()
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("sink down")
        self.batches.append(list(batch))

    @property
    def events(self) -> list[int]:
        return [e for b in self.batches for e in b]

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def collectors() -> Iterator[list[AsyncCollector[int]]]:
    made: list[AsyncCollector[int]] = []
    yield made
    for c in made:
        c.close(timeout=1.0)


def make(collectors: list[AsyncCollector[int]], sink: object, **kw: object) -> AsyncCollector[int]:
    c: AsyncCollector[int] = AsyncCollector(sink, **kw)  # type: ignore[arg-type]
    collectors.append(c)
    return c


def assert_balanced(h: CollectorHealth) -> None:
    """Every event is in exactly one place."""
    assert h.enqueued == h.exported + h.dropped_total + h.filtered + h.queue_depth + h.in_flight


def test_delivers_everything_in_order_in_batches_of_at_most_batch_max(collectors):
    sink = RecordingSink()
    c = make(collectors, sink, batch_max=7, flush_interval=0.05)
    for i in range(100):
        c.enqueue(i)
    assert c.flush(timeout=5)
    assert sink.events == list(range(100))
    assert max(len(b) for b in sink.batches) <= 7
    h = c.health()
    assert (h.enqueued, h.exported, h.dropped_total, h.queue_depth) == (100, 100, 0, 0)


def test_a_full_batch_wakes_the_writer_before_the_interval(collectors):
    sink = RecordingSink()
    c = make(collectors, sink, batch_max=10, flush_interval=60.0)
    for i in range(10):
        c.enqueue(i)
    assert sink.entered.wait(5), "a full batch must wake the writer without waiting 60 s"


def test_the_interval_flushes_a_partial_batch(collectors):
    sink = RecordingSink()
    c = make(collectors, sink, batch_max=1000, flush_interval=0.05)
    c.enqueue(1)
    assert sink.entered.wait(5)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"queue_size": 0}, "queue_size"),
        ({"queue_size": -5}, "queue_size"),
        ({"queue_size": 1.5}, "queue_size"),
        ({"batch_max": 0}, "batch_max"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"flush_interval": float("nan")}, "flush_interval"),
        ({"drop_oldest": "yes"}, "drop_oldest"),
        ({"retry_initial_backoff_s": 0}, "retry_initial_backoff_s"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        AsyncCollector(lambda b: None, **kwargs)
    assert isinstance(info.value, ConfigError)
    assert info.value.setting == name


def test_sink_must_be_callable():
    with pytest.raises(TypeError, match="sink"):
        AsyncCollector("not a sink")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sink"):
        AsyncCollector([])


def test_drop_oldest_keeps_the_newest_and_counts_every_drop(collectors):
    sink = RecordingSink()
    sink.gate.clear()  # the writer blocks in the sink with its first batch
    c = make(collectors, sink, queue_size=10, batch_max=1, flush_interval=0.01)
    c.enqueue(-1)
    assert sink.entered.wait(5)
    for i in range(100):
        c.enqueue(i)
    h = c.health()
    assert h.queue_depth == 10
    assert h.dropped["queue"] == 90
    sink.gate.set()
    assert c.flush(timeout=5)
    assert sink.events == [-1, *range(90, 100)]
    h = c.health()
    assert (h.enqueued, h.exported, h.dropped["queue"]) == (101, 11, 90)
    assert_balanced(h)


def test_drop_newest_keeps_the_oldest_and_counts_every_drop(collectors):
    sink = RecordingSink()
    sink.gate.clear()
    c = make(collectors, sink, queue_size=10, batch_max=1, flush_interval=0.01, drop_oldest=False)
    c.enqueue(-1)
    assert sink.entered.wait(5)
    for i in range(100):
        c.enqueue(i)
    sink.gate.set()
    assert c.flush(timeout=5)
    assert sink.events == [-1, *range(10)]
    h = c.health()
    assert (h.enqueued, h.exported, h.dropped["queue"]) == (101, 11, 90)


@pytest.mark.parametrize("drop_oldest", [True, False])
def test_overload_from_many_threads_is_accounted_exactly(collectors, drop_oldest):
    delivered = 0

    def slow_sink(batch: list[int]) -> None:
        nonlocal delivered
        delivered += len(batch)
        time.sleep(0.0005)  # a slow exporter, so producers outrun it

    c = make(
        collectors,
        slow_sink,
        queue_size=256,
        batch_max=32,
        flush_interval=0.01,
        drop_oldest=drop_oldest,
    )
    per_thread, threads = 20_000, 4

    def produce() -> None:
        for i in range(per_thread):
            c.enqueue(i)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    c.close(timeout=10)
    h = c.health()
    assert h.enqueued == per_thread * threads
    assert h.dropped["queue"] > 0, "the test must actually overload the queue"
    assert h.exported == delivered
    assert h.enqueued == h.exported + h.dropped["queue"] + h.queue_depth
    assert_balanced(h)


def test_a_sink_failing_n_times_then_recovering_gets_every_event(collectors):
    sink = RecordingSink(fail_times=3)
    c = make(
        collectors,
        sink,
        batch_max=10,
        flush_interval=0.01,
        retry_initial_backoff_s=0.001,
        retry_max_backoff_s=0.01,
    )
    for i in range(50):
        c.enqueue(i)
    assert c.flush(timeout=5)
    # The failed batches waited in the retry buffer; nothing was lost and the order held.
    assert sink.events == list(range(50))
    for i in range(50, 100):
        c.enqueue(i)
    assert c.flush(timeout=5)
    assert sink.events == list(range(100))
    h = c.health()
    assert h.export_errors == 3
    assert h.exported == 100
    assert h.dropped_total == 0
    assert h.sinks[0].backing_off is False


def test_a_sink_that_keeps_failing_is_retried_but_memory_stays_bounded(collectors):
    sink = RecordingSink(fail_times=10**9)
    c = make(
        collectors,
        sink,
        queue_size=20,
        batch_max=5,
        flush_interval=0.01,
        retry_initial_backoff_s=0.001,
        retry_max_backoff_s=0.002,
    )
    for i in range(200):
        c.enqueue(i)
        if i % 20 == 0:
            c.flush(timeout=0.05)
    c.flush(timeout=0.2)
    h = c.health()
    assert h.sinks[0].pending <= 20
    assert h.dropped["export"] > 0
    assert h.export_errors > 3, "the sink must be retried, never switched off"
    assert_balanced(h)
    calls_before = sink.calls
    assert c.flush(timeout=0.2) is False
    assert sink.calls > calls_before


def test_processors_run_in_order_and_filtering_is_not_a_drop(collectors):
    sink = RecordingSink()
    c = make(
        collectors,
        sink,
        batch_max=100,
        flush_interval=0.01,
        processors=[lambda b: [x * 10 for x in b], lambda b: [x for x in b if x % 20 == 0]],
    )
    for i in range(10):
        c.enqueue(i)
    assert c.flush(timeout=5)
    assert sink.events == [0, 20, 40, 60, 80]
    h = c.health()
    assert (h.exported, h.filtered, h.dropped_total) == (5, 5, 0)
    assert_balanced(h)


def test_a_failing_processor_drops_its_batch_counted(collectors):
    sink = RecordingSink()

    def broken(batch: list[int]) -> list[int]:
        raise RuntimeError("bug in a processor")

    c = make(collectors, sink, batch_max=100, processors=[broken])
    for i in range(10):
        c.enqueue(i)
    assert c.flush(timeout=5)
    assert sink.events == []
    assert c.health().dropped["processor"] == 10


def test_fan_out_reaches_every_sink_and_a_dead_sink_does_not_stall_the_others(collectors):
    good, dead = RecordingSink(), RecordingSink(fail_times=10**9)
    c = make(
        collectors,
        [good, dead],
        queue_size=1000,
        batch_max=10,
        flush_interval=0.01,
        retry_initial_backoff_s=0.5,
        retry_max_backoff_s=1.0,
    )
    for i in range(100):
        c.enqueue(i)
    c.flush(timeout=0.5)
    assert good.events == list(range(100))
    h = c.health()
    assert [s.name for s in h.sinks] == ["RecordingSink", "RecordingSink"]
    assert h.sinks[0].delivered == 100
    assert h.sinks[1].delivered == 0
    # An event counts as exported only once every sink has it.
    assert h.exported == 0
    assert_balanced(h)


def test_close_drains_closes_sinks_and_is_idempotent(collectors):
    sink = RecordingSink()
    c = make(collectors, sink, batch_max=1000, flush_interval=60.0)
    for i in range(500):
        c.enqueue(i)
    c.close(timeout=5)
    c.close(timeout=5)
    assert sink.events == list(range(500))
    assert sink.closed == 1
    assert c.closed


def test_close_returns_within_its_timeout_when_a_sink_hangs(collectors):
    sink = RecordingSink()
    sink.gate.clear()  # never released until the end of the test
    c = make(collectors, sink, flush_interval=0.01)
    c.enqueue(1)
    assert sink.entered.wait(5)
    start = time.monotonic()
    c.close(timeout=0.2)
    assert time.monotonic() - start < 2.0
    assert c.flush(timeout=0.05) is False
    sink.gate.set()


def test_writer_is_a_named_daemon_thread(collectors):
    seen: list[threading.Thread] = []
    c = make(collectors, lambda b: seen.append(threading.current_thread()), name="my-writer")
    c.enqueue(1)
    assert c.flush(timeout=5)
    assert seen[0].name == "my-writer"
    assert seen[0].daemon
    assert seen[0] is not threading.main_thread()


def test_enqueue_never_raises_even_when_internals_are_broken(collectors):
    c = make(collectors, lambda b: None)
    c.close()
    # Simulate a bug inside the collector: the hot path still must not raise into the app.
    c._buf = None  # type: ignore[assignment]
    c.enqueue(1)


def test_atexit_drains_a_collector_that_was_never_closed(tmp_path: Path):
    out = tmp_path / "out.txt"
    script = textwrap.dedent(
        f"""
        from profilis.core.async_collector import AsyncCollector

        def sink(batch):
            with open({str(out)!r}, "a") as f:
                f.write("".join(f"{{e}}\\n" for e in batch))

        c = AsyncCollector(sink, batch_max=10_000, flush_interval=60.0)
        for i in range(1000):
            c.enqueue(i)
        # no close(): the interpreter exits and atexit must drain
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert out.read_text().split() == [str(i) for i in range(1000)]
