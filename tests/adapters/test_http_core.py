"""The request-timing core every web adapter shares: settings, sampling, trace context."""

from __future__ import annotations

import math

import pytest
from opentelemetry.sdk.trace import TracerProvider

from profilis import ConfigError, Emitter, use_span
from profilis._http import (
    OTHER_METHOD,
    HttpTiming,
    method_label,
    parse_length,
    request_context,
    resolve_emitter,
)
from profilis.schema import is_valid_span_id, is_valid_trace_id

REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c"
REMOTE_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"


@pytest.mark.parametrize("sample", [1.5, -0.1, math.nan, math.inf, "0.5", True])
def test_a_sample_outside_zero_to_one_is_refused_by_name(log, sample):
    with pytest.raises(ConfigError, match=r"^sample must be a number in \[0\.0, 1\.0\]") as info:
        HttpTiming(emitter=log.emitter, sample=sample)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("routes", ["/health", ["health"], ["/ok", 3], [b"/bytes"], 7])
def test_exclude_routes_must_be_a_list_of_path_prefixes(log, routes):
    with pytest.raises(ConfigError, match=r"^exclude_routes must be a list of path prefixes"):
        HttpTiming(emitter=log.emitter, exclude_routes=routes)


def test_settings_are_kept_normalised(log):
    timing = HttpTiming(emitter=log.emitter, sample=1, exclude_routes=["/a", "/b", "/a"])
    assert (timing.sample, timing.exclude_routes) == (1.0, ("/a", "/b"))


def test_an_emitter_or_a_collector_is_required(log):
    with pytest.raises(TypeError, match="emitter= or a collector="):
        resolve_emitter(None, None)
    assert resolve_emitter(None, log.collector).collector is log.collector
    assert resolve_emitter(log.emitter, log.collector) is log.emitter
    with pytest.raises(TypeError, match="not both"):
        resolve_emitter(Emitter(log.collector), object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncCollector"):
        resolve_emitter(None, [])  # type: ignore[arg-type]


def test_sample_zero_records_nothing_and_one_records_everything(log):
    never = HttpTiming(emitter=log.emitter, sample=0.0)
    always = HttpTiming(emitter=log.emitter, sample=1.0)
    assert all(never.skip("/x") for _ in range(1000))
    assert not any(always.skip("/x") for _ in range(1000))


def test_a_sample_rate_records_that_fraction(log):
    timing = HttpTiming(emitter=log.emitter, sample=0.25)
    recorded = sum(not timing.skip("/x") for _ in range(4000))
    # Binomial(4000, 0.25): mean 1000, standard deviation 27; this is six of them.
    assert 838 <= recorded <= 1162


def test_excluded_prefixes_are_skipped(log):
    timing = HttpTiming(emitter=log.emitter, exclude_routes=["/health", "/metrics"])
    assert [timing.skip(p) for p in ("/health", "/health/live", "/healthz", "/metrics")] == [
        True,
        True,
        True,
        True,
    ]
    assert [timing.skip(p) for p in ("/", "/users/health", "/api/metrics")] == [False] * 3


def test_a_new_request_starts_a_new_trace():
    trace_id, span_id, parent, flags, state = request_context(None, None)
    assert is_valid_trace_id(trace_id) and is_valid_span_id(span_id)
    assert (parent, flags, state) == (None, 1, None)
    assert request_context(None, None)[0] != trace_id


def test_a_traceparent_header_makes_the_request_a_child_of_the_caller():
    context = request_context(TRACEPARENT, "vendor=value")
    assert (context[0], context[2], context[3], context[4]) == (
        REMOTE_TRACE,
        REMOTE_SPAN,
        1,
        "vendor=value",
    )
    assert is_valid_span_id(context[1]) and context[1] != REMOTE_SPAN


@pytest.mark.parametrize("header", ["", "garbage", f"00-{'0' * 32}-{REMOTE_SPAN}-01"])
def test_an_invalid_traceparent_starts_a_new_trace(header):
    context = request_context(header, None)
    assert context[0] != REMOTE_TRACE and context[2] is None


def test_inside_a_profilis_span_the_request_is_its_child():
    with use_span() as outer:
        context = request_context(TRACEPARENT, None)
    assert (context[0], context[2]) == (outer.trace_id, outer.span_id)


def test_inside_a_request_left_unrecorded_the_request_is_not_its_child():
    from profilis.runtime.context import UNSAMPLED, reset_current, set_current

    token = set_current(UNSAMPLED)  # an outer middleware sampled the request out
    try:
        trace_id, _, parent, _, _ = request_context(TRACEPARENT, None)
        fresh = request_context(None, None)
    finally:
        reset_current(token)
    assert (trace_id, parent) == (REMOTE_TRACE, REMOTE_SPAN)  # the caller, not the outer
    assert is_valid_trace_id(fresh[0]) and is_valid_span_id(fresh[1]) and fresh[2] is None


def test_an_active_opentelemetry_span_gives_its_own_ids():
    tracer = TracerProvider().get_tracer("profilis-tests")
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span("server") as server,
    ):
        context = request_context(TRACEPARENT, None)
    ids = server.get_span_context()
    assert context[:4] == (
        f"{ids.trace_id:032x}",
        f"{ids.span_id:016x}",
        f"{parent.get_span_context().span_id:016x}",
        int(ids.trace_flags),
    )
    # Without an active span the usual sources apply, though OpenTelemetry is loaded.
    assert request_context(TRACEPARENT, None)[0] == REMOTE_TRACE


def test_methods_outside_the_standard_set_share_one_label():
    assert [method_label(m) for m in ("GET", "PATCH", "get", "PROPFIND", "X" * 100)] == [
        "GET",
        "PATCH",
        OTHER_METHOD,
        OTHER_METHOD,
        OTHER_METHOD,
    ]


@pytest.mark.parametrize(
    ("text", "length"),
    [(None, None), ("", None), ("12", 12), (b"7", 7), ("-1", None), ("1e3", None), ("0", 0)],
)
def test_content_length_values_are_parsed_or_left_out(text, length):
    assert parse_length(text) == length
