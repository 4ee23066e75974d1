"""The receive loop: bursts wait in the sidecar's own bounded backlog, not in the kernel's.

A Unix datagram socket queues about ten datagrams (net.unix.max_dgram_qlen); anything more
is refused to the sender. These tests send bursts of ten to a receiver whose processing is
slow on purpose, and count what the sender had refused.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profilis.config import parse_collector_address
from profilis_sidecar.ingest import Receiver, TokenBucket
from tests.sidecar.helpers import short_dir

BURSTS, BURST = 6, 10


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_dir() as path:
        yield path


class SlowIngest:
    """Takes ``delay_s`` per datagram, like a big batch would; records what it got."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.got: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        time.sleep(self.delay_s)
        with self.lock:
            self.got.append(data)


def send_bursts(path: Path) -> tuple[int, int]:
    """Bursts of ten datagrams 60 ms apart; returns (sent, refused)."""
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    sent = refused = 0
    try:
        sender.connect(str(path))
        for burst in range(BURSTS):
            for i in range(BURST):
                try:
                    sender.send(f"{burst}-{i}".encode())
                    sent += 1
                except BlockingIOError:
                    refused += 1
            time.sleep(0.06)
    finally:
        sender.close()
    return sent, refused


def receive(tmp: Path, backlog_bytes: int) -> tuple[int, int, SlowIngest]:
    # 15 ms per datagram: only 4 of a burst are done before the next one comes, so without
    # a backlog the kernel queue overflows by the second burst; with one, the kernel queue
    # is emptied every 15 ms and a burst is refused only if the thread starves for 45 ms.
    ingest = SlowIngest(delay_s=0.015)
    receiver = Receiver(
        [parse_collector_address(f"unix://{tmp}/c.sock")],
        ingest,
        max_datagram_bytes=1024,
        socket_mode=0o600,
        backlog_bytes=backlog_bytes,
    )
    receiver.start()
    try:
        sent, refused = send_bursts(tmp / "c.sock")
    finally:
        receiver.stop(timeout_s=5.0)  # drains: what was taken is ingested
    return sent, refused, ingest


def test_a_burst_beyond_the_kernel_queue_waits_in_the_backlog(tmp: Path) -> None:
    sent, refused, ingest = receive(tmp, backlog_bytes=1 << 20)

    # The kernel queue is emptied between two slow datagrams, so no burst overflows it.
    assert (sent, refused) == (BURSTS * BURST, 0)
    assert len(ingest.got) == sent
    assert ingest.got[:3] == [b"0-0", b"0-1", b"0-2"]  # arrival order kept


def test_without_room_in_the_backlog_the_kernel_refuses_and_nothing_is_lost_silently(
    tmp: Path,
) -> None:
    sent, refused, ingest = receive(tmp, backlog_bytes=0)

    assert refused > 0  # the sender saw it, and an agent counts it as dropped_transport
    assert sent + refused == BURSTS * BURST
    assert len(ingest.got) == sent  # everything that was accepted was ingested


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_holds_one_seconds_worth_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock)
    taken = 0
    while bucket.ready():
        bucket.spend()
        taken += 1
    assert taken == 4  # starts full: one second's worth
    assert bucket.wait_s() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.ready()
    bucket.spend()
    assert not bucket.ready()
    clock.now += 60.0  # an idle minute refills only up to the capacity
    taken = 0
    while bucket.ready():
        bucket.spend()
        taken += 1
    assert taken == 4
    slow = TokenBucket(0.5, clock=clock)  # below one a second: holds one datagram
    assert slow.ready()
    slow.spend()
    assert not slow.ready()
    assert slow.wait_s() == pytest.approx(2.0)
    clock.now += 2.0
    assert slow.ready()
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0.0)


def _count(ingest: SlowIngest) -> int:
    with ingest.lock:
        return len(ingest.got)


def _settle(ingest: SlowIngest, want: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while _count(ingest) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    return _count(ingest)


def test_an_ingest_rate_limit_reads_no_faster_than_its_tokens_and_drains_at_stop(
    tmp: Path,
) -> None:
    clock = FakeClock()  # frozen unless the test moves it: no token arrives by itself
    ingest = SlowIngest(delay_s=0.0)
    receiver = Receiver(
        [parse_collector_address(f"unix://{tmp}/c.sock")],
        ingest,
        max_datagram_bytes=1024,
        socket_mode=0o600,
        ingest_rate_limit=5.0,
        clock=clock,
    )
    receiver.start()
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sender.connect(str(tmp / "c.sock"))
        for i in range(8):  # within the kernel's queue of ten: none refused
            sender.send(f"d{i}".encode())
        assert _settle(ingest, 5) == 5  # the bucket's five tokens
        time.sleep(0.6)  # a few idle wakes of the loop: still no token, no read
        assert _count(ingest) == 5
        clock.now += 0.5  # two and a half tokens: two reads
        assert _settle(ingest, 7) == 7
        time.sleep(0.3)
        assert _count(ingest) == 7
    finally:
        sender.close()
        receiver.stop(timeout_s=5.0)
    # The drain at stop is not limited: what the kernel still held is ingested.
    assert [d.decode() for d in ingest.got] == [f"d{i}" for i in range(8)]
