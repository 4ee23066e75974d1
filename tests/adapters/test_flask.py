"""ProfilisFlask in process (raw WSGI calls and Flask's test client)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from flask import Flask, Response, request, stream_with_context
from werkzeug.test import create_environ

from profilis import ConfigError, profile
from profilis._http import ERROR_ENVIRON_KEY
from profilis.flask import ProfilisFlask
from profilis.flask.adapter import EXTENSION_KEY


def make_app() -> Flask:
    app = Flask("profilis-test")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("boom")

    @app.post("/echo")
    def echo() -> bytes:
        return request.get_data()

    return app


def test_routes_are_labelled_with_the_matched_rule(log):
    app = make_app()
    ProfilisFlask(app, collector=log.collector)
    client = app.test_client()
    assert client.get("/users/12").json == {"id": 12}
    assert client.get("/users/abc").status_code == 404
    assert client.delete("/users/12").status_code == 405
    events = log.events()
    assert [(e["route"], e["method"], e["status"]) for e in events] == [
        ("/users/<int:user_id>", "GET", 200),
        ("<unmatched>", "GET", 404),
        ("<unmatched>", "DELETE", 405),
    ]


def test_an_exception_flask_turns_into_a_500_is_named(log):
    app = make_app()
    ProfilisFlask(app, emitter=log.emitter)
    assert app.test_client().get("/boom").status_code == 500
    event = log.one()
    assert (event["route"], event["status"], event["error"]) == ("/boom", 500, "ZeroDivisionError")


def test_a_propagated_exception_reaches_the_caller_unchanged(log):
    app = make_app()
    app.testing = True  # PROPAGATE_EXCEPTIONS: Flask re-raises to the WSGI server
    ProfilisFlask(app, emitter=log.emitter)
    with pytest.raises(ZeroDivisionError, match="boom"):
        app.test_client().get("/boom")
    event = log.one()
    assert (event["route"], event["status"], event["error"]) == ("/boom", 500, "ZeroDivisionError")


def test_responses_are_the_same_with_and_without_profilis(log):
    plain, instrumented = make_app(), make_app()
    ProfilisFlask(instrumented, emitter=log.emitter)
    for path in ("/users/3", "/nope", "/boom"):
        ours, theirs = instrumented.test_client().get(path), plain.test_client().get(path)
        assert (ours.status, ours.data) == (theirs.status, theirs.data)
        assert sorted(ours.headers.items()) == sorted(theirs.headers.items())


def test_no_request_hooks_are_added(log):
    app = make_app()
    ProfilisFlask(app, emitter=log.emitter)
    assert (app.before_request_funcs, app.after_request_funcs) == ({}, {})
    assert app.teardown_request_funcs == {}


def test_a_request_body_is_left_for_the_view(log):
    app = make_app()
    ProfilisFlask(app, emitter=log.emitter)
    data = b"0123456789" * 1000
    response = app.test_client().post(
        "/echo", input_stream=io.BytesIO(data), headers={"Content-Length": str(len(data))}
    )
    assert response.data == data
    assert log.one()["bytes_in"] == len(data)


def test_a_streamed_response_is_produced_as_the_client_reads(log):
    app = make_app()
    produced: list[int] = []

    @profile(log.emitter, name="chunk")
    def chunk(n: int) -> str:
        produced.append(n)
        return f"{n}\n"

    @app.get("/count")
    def count() -> Response:
        def generate() -> Iterator[str]:
            for n in range(3):
                yield chunk(n)

        return Response(stream_with_context(generate()))

    ProfilisFlask(app, emitter=log.emitter)
    response = app.test_client().get("/count", buffered=False)
    chunks = response.iter_encoded()
    assert next(chunks) == b"0\n"
    assert produced == [0]
    assert b"".join(chunks) == b"1\n2\n"
    response.close()
    http = log.one("HTTP")
    assert (http["route"], http["bytes_out"]) == ("/count", 6)
    # Events from inside the generator belong to the request's trace.
    fns = log.events("FN")
    assert [e["parent_span_id"] for e in fns] == [http["span_id"]] * 3


def test_settings_are_checked_when_constructed(log):
    with pytest.raises(ConfigError, match=r"^sample must be"):
        ProfilisFlask(make_app(), collector=log.collector, sample=1.5)
    with pytest.raises(ConfigError, match=r"^exclude_routes must be"):
        ProfilisFlask(make_app(), collector=log.collector, exclude_routes=["health"])


def test_init_app_supports_factories_and_refuses_a_second_time(log):
    profilis = ProfilisFlask(emitter=log.emitter, exclude_routes=["/users"], sample=1)
    app = make_app()
    profilis.init_app(app)
    assert app.extensions[EXTENSION_KEY] is profilis
    with pytest.raises(RuntimeError, match="already instrumented"):
        ProfilisFlask(app, emitter=log.emitter)
    app.test_client().get("/users/1")
    app.test_client().get("/nope")
    assert [e["route"] for e in log.events()] == ["<unmatched>"]


def test_another_apps_exceptions_are_not_noted(log):
    ours, other = make_app(), make_app()
    ProfilisFlask(ours, emitter=log.emitter)
    environ = create_environ("/boom")
    b"".join(other(environ, lambda *args: None))
    assert ERROR_ENVIRON_KEY not in environ
    b"".join(ours(environ := create_environ("/boom"), lambda *args: None))
    assert environ[ERROR_ENVIRON_KEY] == "ZeroDivisionError"
