"""DESIGN's wire protocol: ``seq`` is a non-negative integer and the first envelope of a
process may carry 0 or 1. A client that numbers from 0, writing the envelope by hand as the
protocol describes it, loses nothing at the real sidecar."""

from __future__ import annotations

import json
import socket

from tests.sidecar.helpers import running_sidecar, scrape, short_dir, value, wait_for
from tests.support.processes import free_port

EVENTS = 200


def envelope(seq: int, events: list[dict[str, object]], sent_so_far: int) -> bytes:
    """One envelope written from the protocol text, not with the agent's encoder."""
    exported = sent_so_far + len(events)
    return json.dumps(
        {
            "v": 2,
            "profilis_version": "2.0.0",
            "service": "from-zero",
            "pid": 4242,
            "seq": seq,
            "events": events,
            "health": {
                "queue_depth": 0,
                "queue_capacity": 1024,
                "enqueued": exported,
                "dropped_queue": 0,
                "dropped_transport": 0,
                "exported": exported,
            },
        }
    ).encode()


def http_event(n: int) -> dict[str, object]:
    return {
        "kind": "HTTP",
        "ts_ns": 1_700_000_000_000_000_000 + n,
        "dur_ns": 1_000_000,
        "method": "GET",
        "route": "/orders/{id}",
        "status": 200,
    }


def test_a_client_numbering_from_zero_loses_no_batch() -> None:
    port = free_port()
    with short_dir() as directory:
        path = directory / "c.sock"
        with running_sidecar(path, port=port):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(str(path))
                first = [http_event(n) for n in range(EVENTS // 2)]
                second = [http_event(n) for n in range(EVENTS // 2, EVENTS)]
                sock.send(envelope(0, first, 0))
                sock.send(envelope(1, second, len(first)))
            samples = wait_for(
                lambda: scrape(port),
                lambda s: value(s, "profilis_sidecar_events_received_total") >= EVENTS,
                timeout=30,
            )
    assert value(samples, "profilis_http_requests_total", service="from-zero") == EVENTS
    assert value(samples, "profilis_sidecar_rejected_datagrams_total") == 0
    assert value(samples, "profilis_sidecar_batches_lost_total") == 0
