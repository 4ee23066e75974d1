"""Emitter and @profile: the events a user's code produces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.decorators import profile, profile_function
from profilis.runtime import use_span

Event = dict[str, Any]


@pytest.fixture
def captured() -> Iterator[tuple[Emitter, list[Event]]]:
    events: list[Event] = []
    collector: AsyncCollector[Event] = AsyncCollector(events.extend, flush_interval=0.01)
    emitter = Emitter(collector)
    yield emitter, events
    collector.close(timeout=2)


def drain(emitter: Emitter) -> None:
    assert emitter.collector.flush(timeout=5)


def test_http_event_has_the_v2_fields(captured):
    emitter, events = captured
    before = time.time_ns()
    emitter.emit_http("/orders/{id}", 201, 2_000_000, method="POST", bytes_in=10, bytes_out=20)
    drain(emitter)
    [event] = events
    assert event == {
        "kind": "HTTP",
        "ts_ns": event["ts_ns"],
        "dur_ns": 2_000_000,
        "method": "POST",
        "route": "/orders/{id}",
        "status": 201,
        "bytes_in": 10,
        "bytes_out": 20,
    }
    # ts_ns is the wall-clock start: now minus the duration.
    assert before - 2_000_000 <= event["ts_ns"] <= time.time_ns() - 2_000_000


def test_events_carry_the_current_trace(captured):
    emitter, events = captured
    with use_span() as outer, use_span() as inner:
        emitter.emit_http("/a", 500, 1, error="ValueError")
        emitter.emit_db("SELECT ?", 5, rows=3, db_vendor="sqlite")
        emitter.emit_fn("mod.f", 7, error="KeyError")
    drain(emitter)
    for event in events:
        assert event["trace_id"] == outer.trace_id
        assert event["span_id"] == inner.span_id
        assert event["parent_span_id"] == outer.span_id
    assert events[0]["error"] == "ValueError"
    assert (events[1]["kind"], events[1]["rows"], events[1]["db_vendor"]) == ("DB", 3, "sqlite")
    assert (events[2]["kind"], events[2]["fn"], events[2]["error"]) == ("FN", "mod.f", "KeyError")


def test_no_trace_fields_outside_a_span(captured):
    emitter, events = captured
    emitter.emit_fn("f", 1)
    drain(emitter)
    assert "trace_id" not in events[0] and "span_id" not in events[0]


def test_emit_req_is_the_v1_alias(captured):
    emitter, events = captured
    emitter.emit_req("/v1", 200, 5)
    drain(emitter)
    assert events[0]["kind"] == "HTTP" and events[0]["route"] == "/v1"


def test_emitting_garbage_never_raises(captured):
    emitter, events = captured
    emitter.emit_http("/x", 200, "not a number")  # type: ignore[arg-type]
    emitter.emit_fn("f", None)  # type: ignore[arg-type]
    emitter.emit_db("q", object())  # type: ignore[arg-type]
    drain(emitter)
    assert events == []


def test_profile_emits_one_event_per_call_in_a_child_span(captured):
    emitter, events = captured

    @profile(emitter)
    def work(x: int) -> int:
        return x * 2

    with use_span() as request:
        assert work(21) == 42
    drain(emitter)
    [event] = events
    assert event["kind"] == "FN"
    assert event["fn"].endswith(
        "test_profile_emits_one_event_per_call_in_a_child_span.<locals>.work"
    )
    assert event["trace_id"] == request.trace_id
    assert event["parent_span_id"] == request.span_id
    assert event["span_id"] != request.span_id
    assert event["dur_ns"] > 0
    assert work.__name__ == "work"  # functools.wraps


def test_profile_records_the_exception_and_reraises_it(captured):
    emitter, events = captured

    @profile_function(emitter)
    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        boom()
    drain(emitter)
    assert events[0]["error"] == "KeyError"


def test_profile_times_async_functions_until_they_finish_and_links_nested_calls(captured):
    emitter, events = captured

    @profile(emitter, name="inner")
    def inner() -> str:
        return "ok"

    @profile(emitter, name="outer")
    async def outer() -> str:
        await asyncio.sleep(0.01)
        return inner()

    assert asyncio.run(outer()) == "ok"
    drain(emitter)
    by_name = {e["fn"]: e for e in events}
    assert by_name["outer"]["dur_ns"] >= 10_000_000
    assert by_name["inner"]["parent_span_id"] == by_name["outer"]["span_id"]
    assert by_name["inner"]["trace_id"] == by_name["outer"]["trace_id"]
    assert "parent_span_id" not in by_name["outer"]


def test_profile_needs_an_emitter():
    with pytest.raises(TypeError, match="Emitter"):
        profile(lambda: None)  # type: ignore[arg-type]


def test_emit_fn_takes_the_v1_bool_error(captured):
    """1.x callers passed ``error=False``/``True``: no error, and an error of unknown type."""
    emitter, events = captured
    emitter.emit_fn("ok", 1, error=False)
    emitter.emit_fn("failed", 1, error=True)
    drain(emitter)
    assert "error" not in events[0]
    assert events[1]["error"] == "Exception"
