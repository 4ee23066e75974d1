"""ProfilisASGI in process: route templates after routing, streams, passthrough of the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Host, Mount, Route, Router

from profilis import ConfigError, profile
from profilis.asgi import ProfilisASGI, StarletteRoutes
from profilis.fastapi import instrument_fastapi

Message = dict[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def http_scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None):
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def call(app: ASGIApp, scope: dict[str, Any], body: bytes = b"") -> list[Message]:
    """Run one request through ``app`` the way a server would; return what it sent."""
    sent: list[Message] = []

    async def run() -> None:
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        never = asyncio.Event()

        async def receive() -> Message:
            if incoming:
                return incoming.pop(0)
            await never.wait()  # the client stays connected
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    return sent


async def text(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.path_params}")


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"static"})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id:int}", text),
            Route("/items/{item_id:int}/notes", text, methods=["POST"]),
            Mount("/tenants/{tenant}", routes=[Route("/things/{thing_id}", text)]),
            Mount("/v1", app=Starlette(routes=[Mount("/deep", routes=[Route("/x/{y}", text)])])),
            Mount("/static", app=raw_asgi),
            Host("api.example.com", app=Router(routes=[Route("/hosted/{n}", text)])),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "route"),
    [
        ("GET", "/items/3", [], 200, "/items/{item_id}"),
        ("GET", "/items/3/notes", [], 405, "/items/{item_id}/notes"),
        ("GET", "/tenants/acme/things/9", [], 200, "/tenants/{tenant}/things/{thing_id}"),
        ("GET", "/v1/deep/x/1", [], 200, "/v1/deep/x/{y}"),
        ("GET", "/static/css/site.css", [], 200, "/static/{path}"),
        ("GET", "/hosted/5", [(b"host", b"api.example.com")], 200, "/hosted/{n}"),
        ("GET", "/nothing/here", [], 404, "<unmatched>"),
        ("GET", "/tenants/acme/nothing", [], 404, "<unmatched>"),
        ("GET", "/items/3/", [], 307, "<unmatched>"),  # redirect_slashes
    ],
)
def test_the_route_is_the_matched_template(log, method, path, headers, status, route):
    app = starlette_app()
    app.add_middleware(ProfilisASGI, emitter=log.emitter)
    sent = call(app, http_scope(path, method, headers))
    assert sent[0]["status"] == status
    event = log.one()
    assert (event["route"], event["status"], event["method"]) == (route, status, method)


def test_starlette_without_scope_route_is_served_through_the_endpoint():
    router = Router(routes=[Mount("/api", routes=[Route("/users/{uid}", text)])])
    endpoint = router.routes[0].routes[0].endpoint  # type: ignore[attr-defined]
    resolve = StarletteRoutes()
    scope = {"router": router, "endpoint": endpoint}
    assert resolve(scope) == "/api/users/{uid}"
    assert resolve(scope) == "/api/users/{uid}"  # remembered
    assert resolve({"router": router}) is None


def test_messages_pass_through_unchanged_and_streams_are_counted(log):
    chunks = [b"a" * 10, b"b" * 20, b""]
    messages = [
        {"type": "http.response.start", "status": 200, "headers": [(b"x-kept", b"1")]},
        *(
            {"type": "http.response.body", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ),
    ]
    enqueued_after_last_send: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)
        # What runs after the response (background tasks) is not part of its duration.
        enqueued_after_last_send.append(log.collector.health().enqueued)

    sent = call(ProfilisASGI(app, emitter=log.emitter), http_scope("/s"))
    assert all(a is b for a, b in zip(sent, messages, strict=True))
    assert enqueued_after_last_send == [1]
    assert log.one()["bytes_out"] == 30


def test_a_streaming_response_is_sent_chunk_by_chunk(log):
    produced: list[int] = []
    sent_when_produced: list[int] = []
    sent: list[Message] = []

    async def numbers(request: Request) -> StreamingResponse:
        async def generate() -> Any:
            for n in range(3):
                produced.append(n)
                sent_when_produced.append(len(sent))
                yield f"{n}".encode()

        return StreamingResponse(generate())

    app = ProfilisASGI(Starlette(routes=[Route("/n", numbers)]), emitter=log.emitter)

    async def run() -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await app(http_scope("/n"), receive, send)

    asyncio.run(run())
    # Each chunk was sent before the next one was produced: nothing is held back.
    assert sent_when_produced == [1, 2, 3]
    assert log.one()["bytes_out"] == 3


def test_an_exception_before_the_response_is_a_500_and_propagates_unchanged(log):
    error = LookupError("nope")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    with pytest.raises(LookupError) as raised:
        call(ProfilisASGI(app, emitter=log.emitter), http_scope("/x"))
    assert raised.value is error
    event = log.one()
    assert (event["status"], event["error"]) == (500, "LookupError")
    assert "bytes_out" not in event


def test_an_exception_mid_stream_keeps_the_status_sent(log):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        call(ProfilisASGI(app, emitter=log.emitter), http_scope("/x"))
    event = log.one()
    assert (event["status"], event["error"], event["bytes_out"]) == (200, "ConnectionResetError", 4)


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
def test_other_scopes_pass_through_untouched(log, kind):
    seen: list[tuple[object, object, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        pass

    scope = {"type": kind, "path": "/ws"}
    asyncio.run(ProfilisASGI(app, emitter=log.emitter)(scope, receive, send))
    assert seen == [(scope, receive, send)]
    assert log.events() == []


def test_the_span_covers_the_request_and_its_events(log):
    @profile(log.emitter, name="work")
    async def work() -> None:
        pass

    async def endpoint(request: Request) -> Response:
        await work()
        return PlainTextResponse("ok")

    app = ProfilisASGI(Starlette(routes=[Route("/w", endpoint)]), emitter=log.emitter)
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    call(app, http_scope("/w", headers=[(b"traceparent", header.encode())]))
    http, fn = log.one("HTTP"), log.one("FN")
    assert http["trace_id"] == fn["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (http["parent_span_id"], fn["parent_span_id"]) == ("b7ad6b7169203331", http["span_id"])


def test_the_request_content_length_is_read_from_the_headers(log):
    app = ProfilisASGI(Starlette(routes=[Route("/p", text, methods=["POST"])]), emitter=log.emitter)
    call(app, http_scope("/p", "POST", [(b"content-length", b"5")]), body=b"hello")
    assert log.one()["bytes_in"] == 5


def test_custom_and_failing_route_resolvers(log):
    app = starlette_app()
    call(ProfilisASGI(app, emitter=log.emitter, route_resolver=lambda s: "/mine"), http_scope("/x"))

    def broken(scope: Any) -> str:
        raise RuntimeError("resolver bug")

    sent = call(ProfilisASGI(app, emitter=log.emitter, route_resolver=broken), http_scope("/x"))
    assert sent[0]["status"] == 404
    assert [e["route"] for e in log.events()] == ["/mine", "<unmatched>"]


def test_sampled_out_and_excluded_requests_are_passed_straight_through(log):
    seen: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(send)

    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {}

    for wrapped in (
        ProfilisASGI(app, emitter=log.emitter, sample=0),
        ProfilisASGI(app, emitter=log.emitter, exclude_routes=["/health"]),
    ):
        asyncio.run(wrapped(http_scope("/health"), receive, send))
    assert seen == [send, send]
    assert log.events() == []


def test_instrument_fastapi_checks_settings_at_once_and_labels_routes(log):
    app = FastAPI()

    @app.get("/users/{uid}")
    async def user(uid: int) -> dict[str, int]:
        return {"uid": uid}

    with pytest.raises(ConfigError, match=r"^sample must be"):
        instrument_fastapi(app, log.emitter, sample=2)
    instrument_fastapi(app, collector=log.collector)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/users/5")

    assert asyncio.run(run()).json() == {"uid": 5}
    event = log.one()
    assert (event["route"], event["status"]) == ("/users/{uid}", 200)


def test_a_file_sent_by_the_server_counts_its_declared_size(log):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/css"), (b"content-length", b"1234")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "/srv/site.css"})

    sent = call(ProfilisASGI(app, emitter=log.emitter), http_scope("/site.css"))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert log.one()["bytes_out"] == 1234
