"""OTLPExporter against a real HTTP receiver on 127.0.0.1: the spans it decodes, and what
happens when the receiver refuses, throttles, hangs, goes away and comes back."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError
from profilis.exporters.otlp import OTLPExporter
from profilis.runtime import use_span
from tests.exporters.otlp_receiver import Answer, Receiver
from tests.support.processes import free_port

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SPAN = "b7ad6b7169203331"
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(free_port()).start()
    yield running
    if running._server is not None:
        running.stop()


@pytest.fixture
def make() -> Iterator[Callable[..., OTLPExporter]]:
    """Builds exporters, and closes them at the end (they keep their connection open)."""
    made: list[OTLPExporter] = []

    def build(*args: Any, **kwargs: Any) -> OTLPExporter:
        made.append(OTLPExporter(*args, **kwargs))
        return made[-1]

    yield build
    for exporter in made:
        exporter.close()


def attrs(span: Any) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def fn_events(count: int) -> list[dict[str, object]]:
    return [
        {"kind": "FN", "ts_ns": T0 + n, "dur_ns": 10, "fn": f"job.step{n}"} for n in range(count)
    ]


def settled(exporter: OTLPExporter) -> bool:
    """Every event handed in is counted exactly once."""
    return exporter.received == exporter.exported + exporter.dropped + exporter.pending


def wait_until(condition: Callable[[], bool], exporter: OTLPExporter, timeout_s: float) -> None:
    """Poll (an empty batch is a retry tick) until ``condition``, within a deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        exporter([])
        time.sleep(0.01)


def test_events_arrive_as_spans_with_semantic_attributes(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    exporter = make(
        receiver.endpoint, headers={"Authorization": "Bearer s3cret"}, service_name="checkout"
    )
    http = {
        "kind": "HTTP",
        "ts_ns": T0,
        "dur_ns": 2_500_000,
        "method": "POST",
        "route": "/orders/{id}",
        "status": 201,
        "bytes_in": 120,
        "bytes_out": 64,
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": PARENT,
    }
    crash = {**http, "status": 500, "error": "KeyError", "span_id": "1111111111111111"}
    db = {
        "kind": "DB",
        "ts_ns": T0 + 100,
        "dur_ns": 900,
        "query": "SELECT id FROM orders WHERE id = ?",
        "db_vendor": "postgresql",
        "rows": 1,
        # Emitted inside the request's span, as Emitter.emit_db does: that span's ids.
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": PARENT,
    }
    fn = {
        "kind": "FN",
        "ts_ns": T0 + 50,
        "dur_ns": 30,
        "fn": "shop.orders.checkout",
        "error": "ValueError",
    }
    exporter([http, crash, db, fn])

    assert exporter.exported == 4 and exporter.errors == 0 and settled(exporter)
    [received] = receiver.received
    assert received.path == "/v1/traces"
    assert received.headers["Content-Type"] == "application/x-protobuf"
    assert received.headers["Authorization"] == "Bearer s3cret"
    assert received.headers["User-Agent"].startswith("profilis/")
    [resource_spans] = received.request.resource_spans
    assert attrs(resource_spans.resource)["service.name"] == "checkout"
    assert resource_spans.scope_spans[0].scope.name == "profilis"

    by_name = {s.name: s for s in received.spans}
    assert set(by_name) == {"POST /orders/{id}", "SELECT", "shop.orders.checkout"}
    ok, failed = (s for s in received.spans if s.name == "POST /orders/{id}")

    assert ok.kind == Span.SPAN_KIND_SERVER
    assert (ok.trace_id.hex(), ok.span_id.hex(), ok.parent_span_id.hex()) == (TRACE, SPAN, PARENT)
    assert (ok.start_time_unix_nano, ok.end_time_unix_nano) == (T0, T0 + 2_500_000)
    assert attrs(ok) == {
        "http.request.method": "POST",
        "http.route": "/orders/{id}",
        "http.response.status_code": 201,
        "http.request.body.size": 120,
        "http.response.body.size": 64,
    }
    assert ok.status.code == Status.STATUS_CODE_UNSET

    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert attrs(failed)["error.type"] == "KeyError"

    query = by_name["SELECT"]
    assert query.kind == Span.SPAN_KIND_CLIENT
    # The event named the request's span, which it ran in: the statement is its child.
    assert query.parent_span_id.hex() == SPAN and query.trace_id.hex() == TRACE
    assert query.span_id.hex() not in (SPAN, PARENT) and any(query.span_id)
    assert attrs(query) == {
        "db.query.text": "SELECT id FROM orders WHERE id = ?",
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.response.returned_rows": 1,
    }

    call = by_name["shop.orders.checkout"]
    assert call.kind == Span.SPAN_KIND_INTERNAL
    assert attrs(call) == {
        "code.function": "checkout",
        "code.function.name": "shop.orders.checkout",
        "code.namespace": "shop.orders",
        "error.type": "ValueError",
    }
    assert call.status.code == Status.STATUS_CODE_ERROR
    # No ids on the event: a root span of its own, with fresh valid ids.
    assert len(call.trace_id) == 16 and len(call.span_id) == 8 and call.parent_span_id == b""
    assert any(call.trace_id) and any(call.span_id)


def test_5xx_without_exception_still_says_why(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    exporter = make(receiver.endpoint)
    exporter(
        [{"kind": "HTTP", "ts_ns": T0, "dur_ns": 1, "method": "GET", "route": "/", "status": 503}]
    )

    [span] = receiver.spans
    assert span.status.code == Status.STATUS_CODE_ERROR and attrs(span)["error.type"] == "503"


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [("", "/v1/traces"), ("/otlp/", "/otlp/v1/traces"), ("/otlp/v1/traces", "/otlp/v1/traces")],
)
def test_the_traces_path_is_added_once(
    make: Callable[..., OTLPExporter], receiver: Receiver, endpoint: str, path: str
) -> None:
    make(receiver.endpoint + endpoint)(fn_events(1))
    assert receiver.received[0].path == path


def test_receiver_down_then_back_on_the_same_port(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    exporter = make(
        receiver.endpoint, timeout_s=2.0, retry_initial_backoff_s=0.5, retry_max_backoff_s=1.0
    )
    exporter(fn_events(3))
    assert exporter.exported == 3

    receiver.stop()  # also drops the connection the exporter keeps alive
    exporter(fn_events(3))
    assert (exporter.errors, exporter.pending, exporter.exported) == (1, 3, 3)
    assert 0 < exporter.retry_in_s <= 0.5

    exporter(fn_events(3))  # within the backoff: buffered, no request at all
    assert (exporter.errors, exporter.pending) == (1, 6)

    receiver.start()
    wait_until(lambda: exporter.pending == 0, exporter, timeout_s=10.0)

    assert exporter.exported == 9 and exporter.dropped == 0 and settled(exporter)
    assert exporter.retries >= 1 and exporter.retry_in_s == 0.0
    span_ids = [s.span_id for s in receiver.spans]
    assert len(span_ids) == len(set(span_ids)) == 9  # each span delivered exactly once


def test_backoff_doubles_up_to_its_ceiling(make: Callable[..., OTLPExporter]) -> None:
    exporter = make(
        f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused
        retry_initial_backoff_s=0.05,
        retry_max_backoff_s=0.15,
    )
    pauses = []
    exporter(fn_events(1))
    for _ in range(3):
        pauses.append(exporter.retry_in_s)
        errors = exporter.errors
        wait_until(lambda: exporter.errors > errors, exporter, timeout_s=5.0)  # noqa: B023
    pauses.append(exporter.retry_in_s)

    assert [round(p, 2) for p in pauses] == pytest.approx([0.05, 0.1, 0.15, 0.15], abs=0.02)
    assert exporter.retries == 3 and exporter.pending == 1 and settled(exporter)


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("1", 0.8, 1.0),
        ("3600", 1.5, 2.0),  # capped by retry_max_backoff_s
        (None, 0.0, 0.01),  # the exporter's own backoff
    ],
)
def test_retry_after_is_honoured_up_to_the_ceiling(
    make: Callable[..., OTLPExporter],
    receiver: Receiver,
    retry_after: str | None,
    low: float,
    high: float,
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    receiver.answers.append(Answer(503, headers))
    exporter = make(receiver.endpoint, retry_initial_backoff_s=0.01, retry_max_backoff_s=2.0)
    exporter(fn_events(2))

    assert exporter.errors == 1 and exporter.pending == 2
    assert low <= exporter.retry_in_s <= high


def test_retry_after_as_an_http_date(make: Callable[..., OTLPExporter], receiver: Receiver) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    receiver.answers.append(Answer(429, {"Retry-After": when}))
    exporter = make(receiver.endpoint, retry_max_backoff_s=60.0)
    exporter(fn_events(1))

    assert 25 <= exporter.retry_in_s <= 30


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_keep_the_spans(
    make: Callable[..., OTLPExporter], receiver: Receiver, status: int
) -> None:
    receiver.answers.append(Answer(status))
    exporter = make(receiver.endpoint, retry_initial_backoff_s=0.01)
    exporter(fn_events(4))
    assert exporter.pending == 4

    wait_until(lambda: exporter.pending == 0, exporter, timeout_s=5.0)
    assert exporter.exported == 4 and exporter.errors == 1 and settled(exporter)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_final_statuses_drop_without_backoff(
    make: Callable[..., OTLPExporter], receiver: Receiver, status: int
) -> None:
    receiver.answers.append(Answer(status))
    exporter = make(receiver.endpoint)
    exporter(fn_events(4))

    assert exporter.dropped_by_reason["rejected"] == 4 and exporter.pending == 0
    assert exporter.errors == 1 and exporter.retry_in_s == 0.0
    exporter(fn_events(1))  # the endpoint is up: the next batch goes at once
    assert exporter.exported == 1 and settled(exporter)


def test_partial_success_counts_the_rejected_spans(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="too old")
    )
    receiver.answers.append(Answer(200, body=answer.SerializeToString()))
    exporter = make(receiver.endpoint)
    exporter(fn_events(5))

    assert exporter.exported == 3 and exporter.dropped_by_reason["rejected"] == 2
    assert settled(exporter)


def test_the_retry_buffer_is_bounded_and_drops_the_oldest(
    make: Callable[..., OTLPExporter],
) -> None:
    exporter = make(
        f"http://127.0.0.1:{free_port()}",
        max_retry_buffer=10,
        retry_initial_backoff_s=60.0,
        retry_max_backoff_s=60.0,
    )
    for _ in range(3):
        exporter(fn_events(8))

    assert exporter.errors == 1  # one request; then the backoff keeps it off the network
    assert exporter.pending == 10 and exporter.dropped_by_reason["buffer"] == 14
    assert exporter.received == 24 and settled(exporter)


def test_a_hanging_endpoint_costs_one_timeout_then_nothing(
    make: Callable[..., OTLPExporter],
) -> None:
    # Listens but never accepts: connect succeeds, no answer ever comes.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        exporter = make(f"http://127.0.0.1:{hole.getsockname()[1]}", timeout_s=0.3)

        started = time.monotonic()
        exporter(fn_events(2))
        first = time.monotonic() - started
        started = time.monotonic()
        exporter(fn_events(2))
        second = time.monotonic() - started

    assert 0.25 <= first < 1.0
    assert second < 0.05
    assert exporter.errors == 1 and exporter.pending == 4 and settled(exporter)


def test_close_tries_once_more_then_counts_what_is_left(make: Callable[..., OTLPExporter]) -> None:
    port = free_port()
    exporter = make(
        f"http://127.0.0.1:{port}", retry_initial_backoff_s=60.0, retry_max_backoff_s=60.0
    )
    exporter(fn_events(5))
    assert exporter.pending == 5

    receiver = Receiver(port).start()
    try:
        exporter(fn_events(1))  # still backing off: kept
        exporter.close()  # ignores the backoff: delivered now
    finally:
        receiver.stop()
    assert exporter.exported == 6 and exporter.pending == 0

    exporter(fn_events(2))  # receiver gone again
    exporter.close()
    assert exporter.dropped_by_reason["shutdown"] == 2 and settled(exporter)


def test_events_out_of_schema_are_counted_not_fatal(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    exporter = make(receiver.endpoint)
    exporter(
        [{"kind": "FN", "fn": "no.times"}, {"kind": "LOG", "ts_ns": 1, "dur_ns": 1}, *fn_events(2)]
    )

    assert exporter.exported == 2 and exporter.dropped_by_reason["encode"] == 2
    assert settled(exporter)


def test_behind_a_collector_with_real_trace_context(
    make: Callable[..., OTLPExporter], receiver: Receiver
) -> None:
    exporter = make(receiver.endpoint, service_name="shop")
    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(exporter)
    emitter = Emitter(collector)
    with use_span(TRACE, SPAN, PARENT):
        for n in range(50):
            emitter.emit_db("SELECT 1", 1000 + n, rows=1, db_vendor="sqlite")
    collector.close(timeout=10)

    spans = receiver.spans
    assert len(spans) == 50 and collector.health().exported == 50
    # Fifty statements run in one span: fifty children of it, each with its own id.
    assert {(s.trace_id.hex(), s.parent_span_id.hex()) for s in spans} == {(TRACE, SPAN)}
    assert len({s.span_id for s in spans}) == 50


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"endpoint": "ftp://collector:4318"}, "endpoint"),
        ({"endpoint": "collector:4318"}, "endpoint"),
        ({"headers": {"X-Token": "a\r\nInjected: yes"}}, "headers"),
        ({"headers": {"bad name": "v"}}, "headers"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retry_buffer": -1}, "max_retry_buffer"),
        ({"service_name": ""}, "service_name"),
        ({"retry_initial_backoff_s": 2.0, "retry_max_backoff_s": 1.0}, "retry_max_backoff_s"),
    ],
)
def test_bad_settings_name_themselves(kwargs: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OTLPExporter(**kwargs)
    assert caught.value.setting == setting


ids = st.one_of(st.none(), st.text("0123456789abcdef", min_size=16, max_size=16))
schema_events = st.fixed_dictionaries(
    {
        "ts_ns": st.integers(0, 2**62),
        "dur_ns": st.integers(0, 2**61),
        "span_id": ids,
        "error": st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    }
).flatmap(
    lambda common: st.one_of(
        st.fixed_dictionaries(
            {
                "kind": st.just("HTTP"),
                "method": st.sampled_from(["GET", "POST", "_OTHER"]),
                "route": st.text(max_size=30),
                "status": st.integers(100, 599),
            }
        ),
        st.fixed_dictionaries({"kind": st.just("FN"), "fn": st.text(max_size=30)}),
        st.fixed_dictionaries(
            {"kind": st.just("DB"), "query": st.text(max_size=60), "rows": st.integers(0, 2**40)}
        ),
    ).map(lambda specific: {k: v for k, v in {**common, **specific}.items() if v is not None})
)


@settings(max_examples=200, deadline=None)
@given(schema_events)
def test_any_schema_event_maps_to_a_well_formed_span(event: dict[str, Any]) -> None:
    from profilis.exporters._otlp_mapping import encode_request, event_to_span

    span = event_to_span(event)
    decoded = Span.FromString(span.SerializeToString())

    assert decoded.start_time_unix_nano == event["ts_ns"]
    assert decoded.end_time_unix_nano == event["ts_ns"] + event["dur_ns"]
    assert len(decoded.trace_id) == 16 and len(decoded.span_id) == 8
    failed = "error" in event or event.get("status", 0) >= 500
    assert (decoded.status.code == Status.STATUS_CODE_ERROR) == failed
    assert encode_request([span], "svc")  # the envelope serialises too
