"""CollectorExporter over real sockets: envelopes, splitting, counting, reconnects, fork.

The "sidecar" here is a plain datagram socket read by the test and decoded with the
sidecar's own decoder, so what is checked is what the sidecar would see.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from profilis.config import Config, parse_collector_address
from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError
from profilis.exporters.collector import CollectorExporter, Envelope, decode_envelope, load_codec

CODEC = load_codec()


def event(i: int, **extra: object) -> dict[str, Any]:
    return {"kind": "FN", "ts_ns": 1, "dur_ns": i, "fn": f"mod.f{i}", **extra}


_open_receivers: list[socket.socket] = []


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short, so the socket path fits in sun_path's 107 bytes whatever pytest's tmp_path is.
    path = Path(tempfile.mkdtemp(prefix="pfx-", dir="/tmp"))
    yield path
    while _open_receivers:
        _open_receivers.pop().close()
    shutil.rmtree(path, ignore_errors=True)


def bind(path: Path) -> socket.socket:
    """The test's stand-in for the sidecar; closed by the ``sock_dir`` fixture."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    _open_receivers.append(receiver)
    receiver.bind(str(path))
    receiver.settimeout(2.0)
    return receiver


def receive(receiver: socket.socket, count: int = 1) -> list[Envelope]:
    return [
        decode_envelope(receiver.recv(70_000), codec=CODEC, max_bytes=70_000) for _ in range(count)
    ]


def receive_all(receiver: socket.socket) -> list[Envelope]:
    receiver.setblocking(False)
    envelopes = []
    with contextlib.suppress(BlockingIOError):
        while True:
            envelopes.append(decode_envelope(receiver.recv(70_000), codec=CODEC, max_bytes=70_000))
    receiver.settimeout(2.0)
    return envelopes


class FixedHealth:
    def __init__(self, **values: Any) -> None:
        self.values = {
            "enqueued": 0,
            "exported": 0,
            "dropped": {"queue": 0},
            "filtered": 0,
            "export_errors": 0,
            "queue_depth": 0,
            "queue_capacity": 0,
            "in_flight": 0,
            "sinks": (),
            **values,
        }

    def health(self) -> CollectorHealth:
        return CollectorHealth(**self.values)


@pytest.fixture
def exporters() -> Iterator[list[CollectorExporter]]:
    made: list[CollectorExporter] = []
    yield made
    for exporter in made:
        exporter.close()


def make(made: list[CollectorExporter], path: Path | str, **options: Any) -> CollectorExporter:
    options.setdefault("heartbeat_interval_s", 0)
    options.setdefault("close_timeout_s", 0.2)
    exporter = CollectorExporter(f"unix://{path}", **options)
    made.append(exporter)
    return exporter


def test_a_batch_is_one_envelope_with_this_pid_and_the_collector_health(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    source = FixedHealth(
        enqueued=10, queue_depth=4, queue_capacity=2048, dropped={"queue": 2, "export": 1}
    )
    exporter = make(exporters, sock_dir / "c.sock", service="shop", collector=source)

    exporter([event(1), event(2), event(3)])

    (envelope,) = receive(receiver)
    assert envelope.service == "shop"
    assert envelope.pid == os.getpid()
    assert envelope.seq == 1
    assert envelope.events == [event(1), event(2), event(3)]
    health = envelope.health
    assert (health.enqueued, health.queue_depth, health.queue_capacity) == (10, 4, 2048)
    assert (health.dropped_queue, health.dropped_transport, health.exported) == (2, 0, 3)


def test_a_batch_over_the_limit_is_split_in_order_under_the_limit(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock", max_datagram_bytes=2000)
    # About 7 datagrams: the receiving queue (net.unix.max_dgram_qlen, often 10) holds them
    # all, since this test reads only after the call.
    batch = [event(i, error="ValueError") for i in range(150)]

    exporter(batch)

    sizes = []
    envelopes = []
    receiver.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            data = receiver.recv(70_000)
            sizes.append(len(data))
            envelopes.append(decode_envelope(data, codec=CODEC, max_bytes=2000))
    assert len(envelopes) >= 5
    assert max(sizes) <= 2000
    assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert [ev for e in envelopes for ev in e.events] == batch
    # Each envelope's exported count includes its own events.
    assert envelopes[-1].health.exported == 150
    assert exporter.stats().sent_datagrams == len(envelopes)


def test_an_event_too_large_for_any_datagram_is_dropped_and_counted(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock", max_datagram_bytes=2000)
    huge = {"kind": "DB", "ts_ns": 1, "dur_ns": 1, "query": "x" * 5000}

    exporter([event(1), huge, event(2)])
    exporter([event(3)])

    envelopes = receive_all(receiver)
    assert [ev["dur_ns"] for e in envelopes for ev in e.events] == [1, 2, 3]
    stats = exporter.stats()
    assert (stats.oversized_events, stats.dropped_transport, stats.sent_events) == (1, 1, 3)
    assert envelopes[-1].health.dropped_transport == 1


def test_events_that_cannot_be_encoded_are_dropped_and_counted(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock")

    exporter([event(1), event(2, fn=object()), event(3)])

    assert [ev["dur_ns"] for e in receive_all(receiver) for ev in e.events] == [1, 3]
    assert exporter.stats().unencodable_events == 1
    assert exporter.stats().dropped_transport == 1


def test_no_sidecar_counts_transport_drops_without_blocking_or_raising(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    exporter = make(exporters, sock_dir / "missing.sock", reconnect_interval_s=0.0)
    batch = [event(i) for i in range(100)]

    started = time.perf_counter()
    for _ in range(1000):
        exporter(batch)
    elapsed = time.perf_counter() - started

    stats = exporter.stats()
    assert stats.dropped_transport == 100_000
    assert stats.sent_events == 0
    assert stats.last_error == "ENOENT"
    assert elapsed < 2.0  # one failed connect per batch at most, never a wait


def send_in_background(exporter: CollectorExporter, batches: int) -> threading.Thread:
    """Send ``batches`` 128-event batches from another thread, as the writer thread would."""
    batch = [event(i) for i in range(128)]
    thread = threading.Thread(target=lambda: [exporter(batch) for _ in range(batches)])
    thread.start()
    return thread


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_full_socket_buffer_keeps_the_batch_and_sends_it_once_there_is_room(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")  # not read until the buffer has been full
    exporter = make(exporters, sock_dir / "c.sock")
    sender = send_in_background(exporter, 200)

    assert wait_until(lambda: exporter.stats().last_error == "EAGAIN")
    assert sender.is_alive()  # waiting for room, not dropping
    assert exporter.stats().dropped_transport == 0

    envelopes: list[Envelope] = []
    deadline = time.monotonic() + 20.0
    while sum(len(e.events) for e in envelopes) < 200 * 128 and time.monotonic() < deadline:
        envelopes += receive(receiver)
    sender.join(5.0)
    assert not sender.is_alive()
    stats = exporter.stats()
    assert (stats.sent_events, stats.dropped_transport) == (200 * 128, 0)
    assert sum(len(e.events) for e in envelopes) == 200 * 128
    assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))


def test_closing_ends_the_wait_for_room_and_counts_what_is_left(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")  # a paused sidecar: never read
    exporter = make(exporters, sock_dir / "c.sock", close_timeout_s=0.3)
    sender = send_in_background(exporter, 200)
    assert wait_until(lambda: exporter.stats().last_error == "EAGAIN")

    started = time.monotonic()
    exporter.close()
    sender.join(5.0)
    elapsed = time.monotonic() - started
    exporter.close()  # idempotent

    assert not sender.is_alive()
    assert elapsed < 2.0  # close_timeout_s and a backoff step, with room for a busy machine
    stats = exporter.stats()
    assert stats.dropped_transport > 0
    assert stats.sent_events + stats.dropped_transport == 200 * 128
    envelopes = receive_all(receiver)
    assert sum(len(e.events) for e in envelopes) == stats.sent_events


def test_a_closing_collector_ends_the_wait_for_room_and_its_accounting_holds(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    bind(sock_dir / "c.sock")  # a paused sidecar: never read
    exporter = make(exporters, sock_dir / "c.sock", close_timeout_s=0.3)
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(exporter, queue_size=4096)
    exporter.attach(collector)
    for i in range(50_000):
        collector.enqueue(event(i))
    assert wait_until(lambda: exporter.stats().last_error == "EAGAIN")
    assert wait_until(lambda: collector.health().in_flight > 0)

    started = time.monotonic()
    collector.close(timeout=3.0)
    elapsed = time.monotonic() - started

    assert elapsed < 2.5
    health = collector.health()
    assert health.in_flight == 0 and health.queue_depth == 0
    assert health.dropped["queue"] > 0  # the queue overflowed while the writer waited
    assert health.enqueued == 50_000
    assert health.enqueued == (
        health.exported + health.dropped_total + health.filtered + health.queue_depth
    )
    stats = exporter.stats()
    assert stats.sent_events + stats.dropped_transport == health.exported


def test_reconnects_on_its_own_at_most_once_per_interval(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    path = sock_dir / "c.sock"
    exporter = make(exporters, path, reconnect_interval_s=0.3)

    exporter([event(1)])  # no sidecar yet: one connect attempt, fails
    first = bind(path)
    exporter([event(2)])  # within the pause: no attempt, dropped
    assert exporter.stats().dropped_transport == 2
    assert exporter.stats().connects == 0

    deadline = time.monotonic() + 5.0
    while exporter.stats().sent_events == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        exporter([event(3)])
    assert exporter.stats().connects == 1
    assert receive(first)[0].events == [event(3)]

    # The sidecar restarts: a new socket at the same path. The old connection is refused,
    # the socket reopened after the pause, and the new sidecar gets the next batch.
    first.close()
    path.unlink()
    second = bind(path)
    dropped_before = exporter.stats().dropped_transport
    exporter([event(4)])
    assert exporter.stats().dropped_transport == dropped_before + 1
    assert exporter.stats().last_error == "ECONNREFUSED"
    deadline = time.monotonic() + 5.0
    while exporter.stats().connects < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        exporter([event(5)])
    assert exporter.stats().connects == 2
    (envelope,) = receive(second)
    assert envelope.events == [event(5)]
    assert envelope.health.dropped_transport == exporter.stats().dropped_transport


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_sends_with_its_own_pid_sequence_and_counters(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock")
    exporter([event(1), event(2)])
    assert receive(receiver)[0].seq == 1

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            exporter([event(10)])
            code = 0 if exporter.stats().sent_events == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    (from_child,) = receive(receiver)
    assert from_child.pid == child
    assert from_child.seq == 1
    assert from_child.health.exported == 1
    exporter([event(3)])
    (from_parent,) = receive(receiver)
    assert (from_parent.pid, from_parent.seq, from_parent.health.exported) == (os.getpid(), 2, 3)


def test_heartbeats_report_health_when_idle_and_close_sends_the_last_one(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    source = FixedHealth(queue_capacity=64)
    exporter = make(exporters, sock_dir / "c.sock", heartbeat_interval_s=0.05)
    exporter.attach(source)

    beats = [receive(receiver)[0] for _ in range(3)]
    assert all(b.events == [] and b.health.queue_capacity == 64 for b in beats)
    assert [b.seq for b in beats] == [1, 2, 3]

    source.values["dropped"] = {"queue": 9}
    exporter.close()
    exporter.close()  # idempotent
    last = receive_all(receiver)[-1]
    assert (last.events, last.health.dropped_queue) == ([], 9)
    exporter([event(1)])  # after close: counted, not sent, not raised
    assert exporter.stats().dropped_transport == 1


def test_the_json_fallback_writes_what_the_sidecar_reads(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock", use_orjson=False)
    batch = [event(1, error="KeyError"), event(2, fn="naïve.ünicode")]

    exporter(batch)

    (envelope,) = receive(receiver)
    assert envelope.events == batch


def test_udp_transport(sock_dir: Path, exporters: list[CollectorExporter]) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _open_receivers.append(receiver)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    port = receiver.getsockname()[1]
    exporter = CollectorExporter(f"udp://127.0.0.1:{port}", heartbeat_interval_s=0)
    exporters.append(exporter)

    exporter([event(1)])

    assert receive(receiver)[0].events == [event(1)]


def test_built_from_config(sock_dir: Path, exporters: list[CollectorExporter]) -> None:
    receiver = bind(sock_dir / "c.sock")
    config = Config(
        service_name="billing",
        collector_address=parse_collector_address(f"unix://{sock_dir}/c.sock"),
    )
    exporter = CollectorExporter.from_config(config)
    exporters.append(exporter)

    exporter([event(1)])

    assert exporter.address == config.collector_address
    assert receive(receiver)[0].service == "billing"


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"max_datagram_bytes": 100}, "max_datagram_bytes"),
        ({"max_datagram_bytes": 70_000}, "max_datagram_bytes"),
        ({"service": ""}, "service"),
        ({"reconnect_interval_s": -1}, "reconnect_interval_s"),
        ({"address": "tcp://host:1"}, "address"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(options: dict[str, Any], setting: str) -> None:
    address = options.pop("address", "unix:///tmp/x.sock")
    with pytest.raises(ConfigError, match=setting):
        CollectorExporter(address, **options)


def test_with_a_real_collector_every_event_arrives_once(
    sock_dir: Path, exporters: list[CollectorExporter]
) -> None:
    receiver = bind(sock_dir / "c.sock")
    exporter = make(exporters, sock_dir / "c.sock")
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(exporter, queue_size=4096)
    exporter.attach(collector)
    emitter = Emitter(collector)

    for i in range(3000):
        emitter.emit_fn("mod.work", i)
        if i % 500 == 0:  # let the receiver keep up: this test is not about overload
            collector.flush(timeout=5)
            receive_all(receiver)
    collector.close(timeout=5)

    stats = exporter.stats()
    assert (stats.sent_events, stats.dropped_transport) == (3000, 0)
    assert collector.health().exported == 3000


def test_importing_the_exporter_loads_only_the_standard_library() -> None:
    # The agent runs in any app image: orjson is used when present, imported on first use.
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import profilis.exporters.collector\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert [
        m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names | {"profilis"}
    ] == []
