"""Runtime context: ids, spans on contextvars, W3C traceparent."""

from __future__ import annotations

import asyncio
import os
import re
import threading

import pytest

from profilis import runtime
from profilis.runtime import (
    SpanContext,
    current_span,
    format_traceparent,
    get_parent_span_id,
    get_span_id,
    get_trace_id,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    use_span,
)

HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_ids_have_w3c_sizes_and_do_not_repeat():
    spans = {new_span_id() for _ in range(10_000)}
    traces = {new_trace_id() for _ in range(10_000)}
    assert len(spans) == len(traces) == 10_000
    assert all(HEX16.match(s) and s != "0" * 16 for s in spans)
    assert all(HEX32.match(t) and t != "0" * 32 for t in traces)
    assert runtime.span_id is new_span_id  # the 1.x name


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("zero_at", [0, 8 * 100, 8 * 255])
def test_an_all_zero_id_is_never_handed_out(monkeypatch, zero_at):
    from profilis.runtime import ids

    # A random read holding an all-zero id at an id boundary: that id must be left out.
    raw = bytearray(b"\x11" * 8 * 256)
    raw[zero_at : zero_at + 8] = bytes(8)
    monkeypatch.setattr(ids.os, "urandom", lambda size: bytes(raw[:size]))
    monkeypatch.setattr(ids, "_pool", [])
    monkeypatch.setattr(ids, "pool_pop", ids._pool.pop)
    handed = [ids.refill_ids()] + [ids._pool.pop() for _ in range(len(ids._pool))]
    assert len(handed) == 255
    assert "0" * 16 not in handed
    assert set(handed) == {"11" * 8}


def test_a_forked_child_generates_different_ids_than_its_parent():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write, " ".join(new_span_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    parent_ids = {new_span_id() for _ in range(100)}
    child_ids = set(os.read(read, 100_000).decode().split())
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child_ids) == 100
    assert not parent_ids & child_ids


def test_use_span_nests_and_restores():
    assert current_span() is None
    with use_span() as outer:
        assert HEX32.match(outer.trace_id) and HEX16.match(outer.span_id)
        assert outer.parent_span_id is None
        with use_span() as inner:
            assert inner.trace_id == outer.trace_id
            assert inner.parent_span_id == outer.span_id
            assert (get_trace_id(), get_span_id(), get_parent_span_id()) == (
                inner.trace_id,
                inner.span_id,
                outer.span_id,
            )
        assert current_span() == outer
    assert current_span() is None
    assert get_trace_id() is None and get_span_id() is None


def test_use_span_adopts_given_ids():
    with use_span(trace_id="a" * 32, span_id="b" * 16) as ctx:
        assert (ctx.trace_id, ctx.span_id, ctx.parent_span_id) == ("a" * 32, "b" * 16, None)
        assert current_span() == ctx


def test_context_is_isolated_between_threads_and_tasks():
    seen: dict[str, str | None] = {}

    def in_thread() -> None:
        seen["thread"] = get_trace_id()

    async def task(name: str) -> str | None:
        with use_span(trace_id=name * 32, span_id=name * 16):
            await asyncio.sleep(0)
            return get_trace_id()

    async def main() -> list[str | None]:
        return list(await asyncio.gather(task("1"), task("2")))

    with use_span():
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
    assert seen["thread"] is None
    assert asyncio.run(main()) == ["1" * 32, "2" * 32]


def test_v1_setters_still_work():
    token = runtime.set_trace_id("c" * 32)
    try:
        assert get_trace_id() == "c" * 32
        span_token = runtime.set_span_id("d" * 16)
        assert get_span_id() == "d" * 16
        runtime.reset_span_id(span_token)
    finally:
        runtime.reset_trace_id(token)
    assert get_trace_id() is None


def test_traceparent_round_trips():
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = parse_traceparent(header, tracestate="congo=t61rcWkgMzE")
    assert ctx is not None
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.parent_span_id == "00f067aa0ba902b7"
    assert ctx.trace_flags == 1
    assert ctx.tracestate == "congo=t61rcWkgMzE"
    assert HEX16.match(ctx.span_id) and ctx.span_id != ctx.parent_span_id
    # Our outgoing header makes our span the parent of the next hop, same trace and flags.
    out = format_traceparent(ctx)
    assert out == f"00-{ctx.trace_id}-{ctx.span_id}-01"
    again = parse_traceparent(out)
    assert again is not None
    assert (again.trace_id, again.parent_span_id, again.trace_flags) == (
        ctx.trace_id,
        ctx.span_id,
        1,
    )


def test_traceparent_accepts_future_versions_with_extra_fields():
    ctx = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever")
    assert ctx is not None and ctx.trace_flags == 0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extras
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # bad separator
    ],
)
def test_invalid_traceparent_is_ignored(header):
    assert parse_traceparent(header) is None


def test_oversized_tracestate_is_dropped_not_cut():
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = parse_traceparent(header, tracestate="k=" + "v" * 600)
    assert ctx is not None and ctx.tracestate is None


def test_span_context_is_a_named_tuple():
    ctx = SpanContext("a" * 32, "b" * 16)
    assert ctx.parent_span_id is None and ctx.trace_flags == 1 and ctx.tracestate is None
