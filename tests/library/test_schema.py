"""profilis.schema: checking untrusted events and upgrading v1 ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profilis.errors import SchemaError
from profilis.schema import (
    KINDS,
    SCHEMA_VERSION,
    is_valid_span_id,
    is_valid_trace_id,
    upgrade_event,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT_ID = "b7ad6b7169203331"


def http(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "kind": "HTTP",
        "ts_ns": 1_700_000_000_000_000_000,
        "dur_ns": 1_500_000,
        "method": "GET",
        "route": "/orders/{id}",
        "status": 200,
    }
    event.update(changes)
    return event


def fn(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {"kind": "FN", "ts_ns": 1, "dur_ns": 2, "fn": "app.checkout"}
    event.update(changes)
    return event


def db(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {"kind": "DB", "ts_ns": 1, "dur_ns": 2, "query": "SELECT ?"}
    event.update(changes)
    return event


def test_schema_version_is_2() -> None:
    assert SCHEMA_VERSION == "2"
    assert frozenset({"HTTP", "FN", "DB"}) == KINDS


# --------------------------------------------------------------------------- valid v2 input


def test_full_http_event_comes_back_equal_but_not_the_same_object() -> None:
    raw = http(
        error="TimeoutError",
        bytes_in=10,
        bytes_out=2048,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_ID,
    )
    event = upgrade_event(raw)
    assert event == raw
    assert event is not raw
    event["dur_ns"] = 0
    assert raw["dur_ns"] == 1_500_000


@pytest.mark.parametrize("make", [http, fn, db])
def test_result_is_never_the_input_object(make: Callable[[], dict[str, object]]) -> None:
    raw = make()
    assert upgrade_event(raw) is not raw


def test_db_event_keeps_vendor_and_rows() -> None:
    event = upgrade_event(db(db_vendor="postgresql", rows=3, error="IntegrityError"))
    assert event == db(db_vendor="postgresql", rows=3, error="IntegrityError")


@pytest.mark.parametrize("field", ["rows", "db_vendor", "error", "trace_id"])
def test_db_optional_fields_given_as_null_are_left_out(field: str) -> None:
    assert upgrade_event(db(**{field: None})) == db()


def test_http_byte_counts_given_as_null_are_left_out() -> None:
    assert upgrade_event(http(bytes_in=None, bytes_out=None)) == http()


def test_unknown_keys_are_dropped() -> None:
    event = upgrade_event(fn(schema_version="2", password="hunter2", extra={"a": 1}))
    assert event == fn()


@pytest.mark.parametrize("route", ["", "/", "/x" * 512])
def test_route_up_to_1024_characters_is_accepted(route: str) -> None:
    assert upgrade_event(http(route=route))["kind"] == "HTTP"


# --------------------------------------------------------------------------- v1 input


def test_v1_req_becomes_http_with_the_otel_unknown_method() -> None:
    v1 = {
        "kind": "REQ",
        "ts_ns": 5,
        "route": "/items",
        "status": 404,
        "dur_ns": 7,
        "trace_id": None,
        "span_id": None,
    }
    assert upgrade_event(v1) == {
        "kind": "HTTP",
        "ts_ns": 5,
        "dur_ns": 7,
        "method": "_OTHER",
        "route": "/items",
        "status": 404,
    }


def test_v1_req_with_a_method_keeps_it() -> None:
    v1 = http(kind="REQ", method="POST")
    assert upgrade_event(v1) == http(method="POST")


def test_v1_fn_error_true_becomes_exception() -> None:
    assert upgrade_event(fn(error=True)) == fn(error="Exception")


def test_v1_fn_error_false_is_left_out() -> None:
    assert "error" not in upgrade_event(fn(error=False))


def test_v1_fn_meta_is_refused_by_name() -> None:
    with pytest.raises(SchemaError, match="FN_META"):
        upgrade_event({"kind": "FN_META", "fn": "app.checkout", "module": "app"})


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "bad_id",
    [
        TRACE_ID.upper(),
        TRACE_ID[:-1],
        TRACE_ID + "0",
        "0" * 32,
        "g" * 32,
        SPAN_ID,
        f"0x{TRACE_ID[2:]}",
        12345,
        None,
    ],
)
def test_malformed_trace_id_is_dropped_and_the_timing_kept(bad_id: object) -> None:
    event = upgrade_event(http(trace_id=bad_id, span_id=SPAN_ID))
    assert "trace_id" not in event
    assert event["span_id"] == SPAN_ID
    assert event["dur_ns"] == 1_500_000


@pytest.mark.parametrize("bad_id", [SPAN_ID.upper(), SPAN_ID[:-1], "0" * 16, TRACE_ID, b"a" * 16])
@pytest.mark.parametrize("field", ["span_id", "parent_span_id"])
def test_malformed_span_ids_are_dropped(field: str, bad_id: object) -> None:
    event = upgrade_event(fn(trace_id=TRACE_ID, **{field: bad_id}))
    assert event == fn(trace_id=TRACE_ID)


def test_id_helpers() -> None:
    assert is_valid_trace_id(TRACE_ID)
    assert is_valid_span_id(SPAN_ID)
    assert not is_valid_trace_id(SPAN_ID)
    assert not is_valid_span_id(TRACE_ID)
    assert not is_valid_trace_id("0" * 32)
    assert not is_valid_span_id("0" * 16)
    assert not is_valid_span_id(SPAN_ID + "\n")
    assert not is_valid_trace_id(None)


# --------------------------------------------------------------------------- refusals

BAD_FIELDS = [
    # (event, field named in the message, words of what was expected)
    (http(kind="TRACE"), "kind", "one of 'HTTP', 'FN', 'DB'"),
    (http(kind=None), "kind", "one of"),
    (http(ts_ns="1"), "ts_ns", "an integer in [0,"),
    (http(ts_ns=-1), "ts_ns", "an integer in [0,"),
    (http(ts_ns=1.0), "ts_ns", "an integer"),
    (http(dur_ns=2**63), "dur_ns", "an integer in [0, 9223372036854775807]"),
    (fn(dur_ns=None), "dur_ns", "an integer"),
    (http(status=99), "status", "an integer in [100, 599]"),
    (http(status=600), "status", "an integer in [100, 599]"),
    (http(status="200"), "status", "an integer in [100, 599]"),
    (http(method=""), "method", "a non-empty string of at most 32 characters"),
    (http(method="G" * 33), "method", "at most 32 characters"),
    (http(method=None), "method", "a non-empty string"),
    (http(route=["/a"]), "route", "a string of at most 1024 characters"),
    (http(route="/" * 1025), "route", "at most 1024 characters"),
    (http(bytes_in=-1), "bytes_in", "an integer in [0,"),
    (http(bytes_out="10"), "bytes_out", "an integer"),
    (fn(fn=None), "fn", "a string of at most 1024"),
    (fn(fn="f" * 1025), "fn", "at most 1024"),
    (fn(error=1), "error", "an exception type name"),
    (fn(error=""), "error", "an exception type name"),
    (fn(error="E" * 257), "error", "at most 256 characters"),
    (db(query="q" * 8193), "query", "at most 8192 characters"),
    (db(query=b"SELECT 1"), "query", "a string"),
    (db(rows=-1), "rows", "an integer in [0,"),
    (db(rows="3"), "rows", "an integer"),
    (db(db_vendor=""), "db_vendor", "a non-empty string of at most 64"),
    (db(db_vendor=5), "db_vendor", "a non-empty string"),
]


@pytest.mark.parametrize(("raw", "field", "expected"), BAD_FIELDS)
def test_type_errors_name_the_field_and_what_was_expected(
    raw: dict[str, object], field: str, expected: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        upgrade_event(raw)
    message = str(caught.value)
    assert message.startswith(f"{field} ")
    assert expected in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("ts_ns", True), ("dur_ns", False), ("status", True), ("bytes_in", True), ("rows", True)],
)
def test_bool_is_not_accepted_as_an_integer(field: str, value: bool) -> None:
    raw = db(**{field: value}) if field == "rows" else http(**{field: value})
    with pytest.raises(SchemaError, match=f"^{field} must be an integer .*, got {value}$"):
        upgrade_event(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "FN", "dur_ns": 2, "fn": "f"}, "ts_ns is missing: expected an integer in [0,"),
        ({"kind": "HTTP", "ts_ns": 1, "dur_ns": 2, "route": "/", "status": 200}, "method is"),
        ({"kind": "DB", "ts_ns": 1, "dur_ns": 2}, "query is missing: expected a string"),
        ({}, "kind is missing"),
    ],
)
def test_missing_required_fields_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        upgrade_event(raw)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("not_an_object", [[], "HTTP", 3, None])
def test_a_non_object_event_is_a_schema_error(not_an_object: object) -> None:
    with pytest.raises(SchemaError, match="an event must be an object"):
        upgrade_event(not_an_object)  # type: ignore[arg-type]


def test_long_values_are_abbreviated_in_messages() -> None:
    with pytest.raises(SchemaError) as caught:
        upgrade_event(http(route="/" + "a" * 100_000))
    assert len(str(caught.value)) < 200
    assert "100001 characters" in str(caught.value)


def test_huge_integers_do_not_break_the_message() -> None:
    with pytest.raises(SchemaError, match="got an integer too large"):
        upgrade_event(http(status=10**5000))


# --------------------------------------------------------------------------- property

FIELDS = [
    "kind",
    "ts_ns",
    "dur_ns",
    "method",
    "route",
    "status",
    "fn",
    "query",
    "db_vendor",
    "rows",
    "error",
    "bytes_in",
    "bytes_out",
    "trace_id",
    "span_id",
    "parent_span_id",
]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(["HTTP", "FN", "DB", "REQ", "FN_META", "GET", TRACE_ID, SPAN_ID])
    | st.integers(min_value=0, max_value=700)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
events = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=12)
# Mostly valid events with one field replaced, so the accepting path is explored too.
near_valid = st.builds(
    lambda base, key, value: {**base, key: value},
    st.sampled_from([http(), fn(), db(), http(kind="REQ")]),
    st.sampled_from(FIELDS),
    json_values,
)


@given(st.one_of(events, near_valid))
def test_any_json_object_gives_a_clean_event_or_a_schema_error(raw: dict[str, object]) -> None:
    try:
        event = upgrade_event(raw)
    except SchemaError:
        return
    assert event["kind"] in KINDS
    assert event is not raw
    assert set(event) <= set(FIELDS)
    # A checked event passes again unchanged: the sidecar may see re-exported events.
    assert upgrade_event(event) == event
