"""Without orjson, the json fallback refuses what orjson refuses: a lone surrogate escape.

Before, a sidecar without orjson accepted ``"route": "/a\\ud800"``, kept it as a label, and
every later /metrics render failed (UTF-8 cannot hold a lone surrogate). The sidecar runs
as a real process with orjson hidden (a module of that name that refuses to import).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profilis.exporters._wire import load_codec
from tests.sidecar.helpers import counters, get, running_sidecar, short_dir, wait_for

LONE = [b'"\\ud800"', b'{"route": "/a\\udfff"}', b'{"\\udc00": 1}']


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "json"])
@pytest.mark.parametrize("text", LONE)
def test_both_codecs_refuse_a_lone_surrogate(use_orjson: bool, text: bytes) -> None:
    with pytest.raises(ValueError):
        load_codec(use_orjson).loads(text)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "json"])
def test_both_codecs_keep_pairs_and_escaped_backslashes(use_orjson: bool) -> None:
    loads = load_codec(use_orjson).loads
    assert loads(b'{"e": "\\ud83d\\ude00", "p": "C:\\\\ud800"}') == {
        "e": "\U0001f600",
        "p": "C:\\ud800",
    }


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_dir() as path:
        yield path


def envelope(seq: int, route: str) -> bytes:
    event = {"kind": "HTTP", "ts_ns": time.time_ns(), "dur_ns": 1000, "method": "GET"}
    health = dict.fromkeys(
        ("queue_depth", "enqueued", "dropped_queue", "dropped_transport", "exported"), 0
    )
    body = {
        "v": 2,
        "profilis_version": "test",
        "service": "shop",
        "pid": 4242,
        "seq": seq,
        "events": [{**event, "route": route, "status": 200}],
        "health": {**health, "queue_capacity": 10},
    }
    return json.dumps(body).encode()  # ensure_ascii: "\ud800" travels as an escape


def test_a_sidecar_without_orjson_refuses_a_lone_surrogate_and_keeps_serving(tmp: Path) -> None:
    hidden = tmp / "no-orjson"
    hidden.mkdir()
    (hidden / "orjson.py").write_text('raise ImportError("orjson is hidden in this test")\n')
    path = os.pathsep.join(p for p in (str(hidden), os.environ.get("PYTHONPATH", "")) if p)
    with running_sidecar(tmp / "c.sock", env={"PYTHONPATH": path}) as sidecar:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as agent:
            for seq, route in enumerate(["/ok", "/bad\ud800", "/ok"], start=1):
                agent.sendto(envelope(seq, route), str(tmp / "c.sock"))
        seen = wait_for(lambda: counters(sidecar.port), lambda c: c["datagrams"] >= 3, timeout=10)
        scrapes = [get(sidecar.port, "/metrics") for _ in range(2)]

    assert seen["rejected"]["malformed"] == 1
    assert seen["events_received"] == 2
    for code, body in scrapes:
        assert code == 200
        assert b'route="/ok"' in body and b"/bad" not in body
