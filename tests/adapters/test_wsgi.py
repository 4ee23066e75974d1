"""ProfilisWSGI around plain WSGI apps: what it records, and what it must leave alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from profilis import profile
from profilis.runtime.context import current_span, get_current
from profilis.wsgi import ProfilisWSGI

Headers = list[tuple[str, str]]


class Server:
    """The server side of a WSGI call: records what the app started and sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.written: list[bytes] = []

    def start_response(self, *args: Any) -> Callable[[bytes], object]:
        self.calls.append(args)
        return self.written.append


def environ(path: str = "/orders/7", method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, **extra}


def sized_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain"), ("content-length", "5")])
    return [b"hello"]


def resolver(environ: dict[str, Any]) -> str:
    return "/orders/{id}"


def test_a_sized_response_passes_through_untouched(log):
    headers: Headers = [("Content-Length", "2"), ("X-Custom", "yes")]
    body = [b"ok"]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return body

    server = Server()
    wrapped = ProfilisWSGI(app, emitter=log.emitter, route_resolver=resolver)
    assert wrapped(environ(), server.start_response) is body
    assert server.calls == [("200 OK", headers)]
    assert server.calls[0][1] is headers
    event = log.one()
    assert (event["route"], event["status"], event["bytes_out"]) == ("/orders/{id}", 200, 2)
    assert event["dur_ns"] > 0


def test_the_request_content_length_is_read_from_the_environ_only(log):
    wrapped = ProfilisWSGI(sized_app, emitter=log.emitter)
    request = environ(method="POST", CONTENT_LENGTH="42", **{"wsgi.input": object()})
    wrapped(request, Server().start_response)
    event = log.one()
    assert (event["method"], event["status"], event["bytes_in"]) == ("POST", 201, 42)
    assert event["route"] == "<unmatched>"  # no resolver: never the raw path


def test_an_in_memory_body_without_length_is_counted_and_returned_as_is(log):
    body = [b"ab", b"cde"]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return body

    assert ProfilisWSGI(app, emitter=log.emitter)(environ(), Server().start_response) is body
    assert log.one()["bytes_out"] == 5


def test_a_streamed_body_is_neither_read_ahead_nor_buffered(log):
    produced: list[int] = []
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for n in range(3):
                produced.append(n)
                # The request's span is current while the app produces its body.
                assert get_current() is not None
                yield b"x" * (n + 1)

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return Body()

    body = ProfilisWSGI(app, emitter=log.emitter, route_resolver=resolver)(
        environ(), Server().start_response
    )
    assert produced == []
    assert get_current() is None
    chunks = iter(body)
    assert next(chunks) == b"x"
    assert produced == [0]
    assert log.events() == []  # not finished yet
    assert list(chunks) == [b"xx", b"xxx"]
    body.close()  # type: ignore[attr-defined]
    assert closed == [True]
    event = log.one()
    assert (event["status"], event["bytes_out"]) == (200, 6)


def test_a_stream_closed_early_is_recorded_once_with_what_was_sent(log):
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"abc"
        yield b"never sent"

    body = ProfilisWSGI(app, emitter=log.emitter)(environ(), Server().start_response)
    assert next(iter(body)) == b"abc"
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]
    assert log.one()["bytes_out"] == 3


def test_an_app_that_starts_its_response_lazily_is_recorded_at_the_end(log):
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("404 Not Found", [("Content-Length", "4")])
        yield b"gone"

    server = Server()
    body = ProfilisWSGI(app, emitter=log.emitter)(environ(), server.start_response)
    assert server.calls == []
    assert list(body) == [b"gone"]
    assert server.calls == [("404 Not Found", [("Content-Length", "4")])]
    assert log.one()["status"] == 404


def test_a_server_file_wrapper_is_returned_as_it_is(log):
    class FileWrapper:
        def __init__(self, name: str) -> None:
            self.name = name

        def __iter__(self) -> Iterator[bytes]:
            yield b"data"

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"]("report.pdf")

    request = environ(**{"wsgi.file_wrapper": FileWrapper})
    body = ProfilisWSGI(app, emitter=log.emitter)(request, Server().start_response)
    assert type(body) is FileWrapper  # so the server can still sendfile() it
    assert "bytes_out" not in log.one()


def test_an_exception_propagates_unchanged_and_is_named(log):
    error = KeyError("missing")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise error

    with pytest.raises(KeyError) as raised:
        ProfilisWSGI(app, emitter=log.emitter, route_resolver=resolver)(
            environ(), Server().start_response
        )
    assert raised.value is error
    event = log.one()
    assert (event["status"], event["error"], event["route"]) == (500, "KeyError", "/orders/{id}")
    assert get_current() is None


def test_exc_info_reaches_the_server_as_given(log):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise RuntimeError("late")
        except RuntimeError as exc:
            info = (type(exc), exc, exc.__traceback__)
            start_response("500 Internal Server Error", [("Content-Length", "0")], info)
        return []

    server = Server()
    ProfilisWSGI(app, emitter=log.emitter)(environ(), server.start_response)
    assert [len(call) for call in server.calls] == [2, 3]
    assert log.one()["status"] == 500


def test_a_framework_may_report_a_handled_error_and_its_route(log):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["profilis.error"] = "ZeroDivisionError"
        environ["profilis.route"] = "/divide/<a>/<b>"
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return []

    ProfilisWSGI(app, emitter=log.emitter)(environ(), Server().start_response)
    event = log.one()
    assert (event["route"], event["error"]) == ("/divide/<a>/<b>", "ZeroDivisionError")


def test_a_failing_route_resolver_does_not_fail_the_request(log):
    def broken(environ: dict[str, Any]) -> str:
        raise LookupError("resolver bug")

    wrapped = ProfilisWSGI(sized_app, emitter=log.emitter, route_resolver=broken)
    assert wrapped(environ(), Server().start_response) == [b"hello"]
    assert log.one()["route"] == "<unmatched>"


def test_events_inside_the_request_share_its_trace(log):
    @profile(log.emitter, name="inner")
    def inner() -> None:
        pass

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        inner()
        return sized_app(environ, start_response)

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = environ(HTTP_TRACEPARENT=traceparent)
    ProfilisWSGI(app, emitter=log.emitter)(request, Server().start_response)
    http, fn = log.one("HTTP"), log.one("FN")
    assert http["trace_id"] == fn["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (http["parent_span_id"], fn["parent_span_id"]) == ("b7ad6b7169203331", http["span_id"])


def test_sampled_out_and_excluded_requests_are_passed_straight_through(log):
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # No span to see; the context only tells DB and FN hooks to skip (test_sampling_scope).
        seen.append((start_response, current_span()))
        return []

    server = Server()
    ProfilisWSGI(app, emitter=log.emitter, sample=0.0)(environ(), server.start_response)
    ProfilisWSGI(app, emitter=log.emitter, exclude_routes=["/orders"])(
        environ(), server.start_response
    )
    assert seen == [(server.start_response, None)] * 2
    assert log.events() == []


def test_the_app_must_be_a_wsgi_callable(log):
    with pytest.raises(TypeError, match="WSGI callable"):
        ProfilisWSGI("app", emitter=log.emitter)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="route_resolver"):
        ProfilisWSGI(sized_app, emitter=log.emitter, route_resolver="/x")  # type: ignore[arg-type]


def test_under_an_opentelemetry_server_span_the_request_takes_its_ids(log):
    @profile(log.emitter, name="inner")
    def inner() -> None:
        pass

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        inner()
        return sized_app(environ, start_response)

    tracer = TracerProvider().get_tracer("profilis-tests")
    wrapped = ProfilisWSGI(app, emitter=log.emitter)
    # As an OpenTelemetry WSGI middleware outside ours would leave it.
    with tracer.start_as_current_span("GET /orders/{id}") as server_span:
        wrapped(environ(), Server().start_response)
    ids = server_span.get_span_context()
    http, fn = log.one("HTTP"), log.one("FN")
    assert (http["trace_id"], http["span_id"]) == (f"{ids.trace_id:032x}", f"{ids.span_id:016x}")
    assert (fn["trace_id"], fn["parent_span_id"]) == (http["trace_id"], http["span_id"])
