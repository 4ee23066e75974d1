"""Hostile datagrams against the sidecar's decoder: nothing escapes, everything is counted.

Each generated datagram goes through ``IngestState.ingest`` (decode, checks, aggregation)
exactly as the receive thread calls it. After each one, exactly one of two things happened:
it was rejected (one reason counter moved by one), or it was accepted and every event it
carried is either in the request metrics or counted as a decode drop.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from profilis.exporters._wire import load_codec
from profilis.exporters.prometheus import EventMetrics
from profilis_sidecar.state import IngestState, Totals

MAX_BYTES = 4096

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
hostile_events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["HTTP", "FN", "DB", "REQ", "http", ""]) | scalars,
            "dur_ns": st.integers(min_value=-5, max_value=2**64) | scalars,
        },
        optional={
            "route": st.text(max_size=40) | json_values,
            "method": st.sampled_from(["GET", "POST", ""]) | json_values,
            "status": st.integers(min_value=0, max_value=700) | scalars,
            "fn": st.text(max_size=20) | json_values,
            "db_vendor": st.sampled_from(["sqlite", "postgresql"]) | json_values,
        },
    ),
)
HEALTH_KEYS = (
    "queue_depth",
    "queue_capacity",
    "enqueued",
    "dropped_queue",
    "dropped_transport",
    "exported",
)


def mostly(
    valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``valid`` four times in five: one hostile field is enough to test a check."""
    # (one_of would not do: it treats repeated branches as one)
    return st.integers(min_value=0, max_value=4).flatmap(lambda i: hostile if i == 0 else valid)


health_values = mostly(
    st.integers(min_value=0, max_value=2**40), st.integers(min_value=-1, max_value=2**64) | scalars
)
# Mostly-valid envelopes with some fields made hostile or removed: a fully random object
# would almost never pass the envelope checks, leaving the event paths unexercised.
envelopes = st.builds(
    lambda envelope, missing: {k: v for k, v in envelope.items() if k not in missing},
    st.fixed_dictionaries(
        {
            "v": mostly(st.just(2), st.sampled_from([1, 3, "2", 2.0, True]) | scalars),
            "profilis_version": mostly(st.just("2.0.0"), st.text(max_size=70) | scalars),
            "service": mostly(
                st.sampled_from(["svc", "unknown_service"]), st.text(max_size=10) | scalars
            ),
            "pid": mostly(
                st.integers(min_value=1, max_value=5),
                st.integers(min_value=-1, max_value=2**33) | scalars,
            ),
            "seq": mostly(
                st.integers(min_value=1, max_value=10),
                st.integers(min_value=-1, max_value=2**64) | scalars,
            ),
            "events": mostly(st.lists(hostile_events, max_size=8), json_values),
            "health": mostly(
                st.fixed_dictionaries({name: health_values for name in HEALTH_KEYS}), json_values
            ),
        }
    ),
    mostly(
        st.just(frozenset()),
        st.sets(st.sampled_from(["v", "service", "pid", "seq", "events", "health"]), max_size=2),
    ),
)


def encode(envelope: dict[str, Any]) -> bytes:
    # orjson refuses integers beyond 64 bits; the json module writes them, as a hostile
    # sender might.
    return json.dumps(envelope).encode()


def fresh_state() -> IngestState:
    return IngestState(
        EventMetrics(invalid_events_metric=None, max_label_values=50, max_series=100),
        max_datagram_bytes=MAX_BYTES,
    )


def requests_counted(state: IngestState) -> float:
    total = 0.0
    for family in state._metrics.collect():
        if family.name in (
            "profilis_http_requests",
            "profilis_function_calls",
            "profilis_db_queries",
        ):
            total += sum(sample.value for sample in family.samples)
    return total


def check_one(state: IngestState, data: bytes, events: int | None) -> None:
    before: Totals = state.totals()
    counted_before = requests_counted(state)
    state.ingest(data)  # must not raise
    after = state.totals()
    assert after.datagrams == before.datagrams + 1
    rejected = sum(after.rejected.values()) - sum(before.rejected.values())
    received = after.events_received - before.events_received
    decode_drops = after.dropped["decode"] - before.dropped["decode"]
    assert rejected in (0, 1)
    if currently_in_test_context():
        event("rejected" if rejected else "accepted")
    if rejected == 0:
        assert events is not None, "only an envelope with an event list can be accepted"
        assert received + decode_drops == events
        assert requests_counted(state) - counted_before == received
    else:
        assert received == 0
        assert requests_counted(state) == counted_before


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=MAX_BYTES + 50))
def test_arbitrary_bytes_are_rejected_or_accounted(data: bytes) -> None:
    state = fresh_state()
    check_one(state, data, None if not data.startswith(b"{") else _event_count(data))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=envelopes)
def test_hostile_envelopes_are_rejected_or_accounted(envelope: dict[str, Any]) -> None:
    state = fresh_state()
    events = envelope.get("events")
    check_one(state, encode(envelope), len(events) if isinstance(events, list) else None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(envelopes, min_size=2, max_size=12))
def test_a_stream_of_hostile_datagrams_from_one_state(stream: list[dict[str, Any]]) -> None:
    # Worker bookkeeping (sequence gaps, restarts, counter deltas) must survive any order.
    state = fresh_state()
    for envelope in stream:
        events = envelope.get("events")
        check_one(state, encode(envelope), len(events) if isinstance(events, list) else None)
    totals = state.totals()
    assert min(totals.dropped.values()) >= 0
    assert totals.batches_lost >= 0


def test_the_json_fallback_decoder_agrees_on_what_is_valid() -> None:
    state = IngestState(EventMetrics(invalid_events_metric=None), codec=load_codec(False))
    good = orjson.dumps(
        {
            "v": 2,
            "profilis_version": "2",
            "service": "s",
            "pid": 1,
            "seq": 1,
            "events": [{"kind": "FN", "fn": "f", "dur_ns": 1, "ts_ns": 1}],
            "health": dict.fromkeys(
                (
                    "queue_depth",
                    "queue_capacity",
                    "enqueued",
                    "dropped_queue",
                    "dropped_transport",
                    "exported",
                ),
                0,
            ),
        }
    )
    for data in (good, b'{"v": NaN}', b"\xff\xfe{}", b'{"v": 2' + b"[" * 5000):
        check_one(state, data, 1 if data == good else None)
    assert state.totals().events_received == 1
    assert state.totals().rejected["malformed"] == 3


def _event_count(data: bytes) -> int | None:
    try:
        decoded = json.loads(data)
    except (ValueError, RecursionError):
        return None
    events = decoded.get("events") if isinstance(decoded, dict) else None
    return len(events) if isinstance(events, list) else None
