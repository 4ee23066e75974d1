"""Web adapter rows: what instrumenting a trivial Flask or Starlette app adds per request.

Run by ``bench.worker``: ``flask_hooks`` and the ``*_ours`` rows in our venv, the ``*_peer``
rows in the peer venv (Profilis 1.0.0 beside the same Flask and Starlette, see
``bench.peer_env``). Standard library only at import time, like every case module.

Each row calls one app object directly (WSGI, or ASGI in one event loop) in interleaved
rounds, with its instrumentation switched off and on; the value is the median of the paired
per-request differences. A Flask request costs tens of microseconds and the overheads a few,
so pairing on the very same app object (no second app with its own memory layout) and
alternating the order are what make the difference measurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import itertools
import statistics
import sys
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Literal

from bench.cases_peer import PEER_VERSION, _peer
from bench.registry import CaseResult, Settings
from bench.workload import EMIT_QUEUE_SIZE, discard, wait_until_empty

__all__ = [
    "TimingOnlyASGI",
    "asgi_ours",
    "asgi_peer",
    "asgi_timing",
    "flask_hooks",
    "flask_ours",
    "flask_peer",
]

Mode = Literal["bare", "wrapped"]
#: ``run(mode, n)``: serve ``n`` requests with the instrumentation off or on.
Runner = Callable[[Mode, int], None]

PATH = "/users/3"
#: Interleaved rounds per row (each round: one bare and one instrumented batch).
ROUNDS = 41
ROUNDS_QUICK = 7
_HOOK_TABLES = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs")


def _batch_ns(run: Runner, mode: Mode, n: int) -> tuple[int, int]:
    gc.collect()
    cpu = time.thread_time_ns()
    start = time.perf_counter_ns()
    run(mode, n)
    end = time.perf_counter_ns()
    return end - start, time.thread_time_ns() - cpu


def paired_overhead(
    run: Runner,
    settings: Settings,
    info: dict[str, object],
    settle: Callable[[], object] | None = None,
) -> CaseResult:
    """Median per-request cost of ``wrapped`` over ``bare``, from interleaved rounds."""
    target_ns = settings.rep_s * 1e9
    n = 10
    while True:  # calibration, doubling as warm-up for both modes
        run("wrapped", n)
        elapsed, _ = _batch_ns(run, "bare", n)
        if elapsed >= 0.8 * target_ns or n >= 1 << 20:
            break
        n = n * 10 if elapsed < 1e6 else int(n * target_ns / elapsed) + 1
    samples: dict[Mode, list[tuple[float, float]]] = {"bare": [], "wrapped": []}
    for round_ in range(ROUNDS_QUICK if settings.quick else ROUNDS):
        # Alternate which goes first, so neither side always runs on a warmer cache.
        order: tuple[Mode, Mode] = ("bare", "wrapped") if round_ % 2 else ("wrapped", "bare")
        for mode in order:
            if settle is not None:
                settle()
            wall, cpu = _batch_ns(run, mode, n)
            samples[mode].append((wall / n, cpu / n))
    pairs = list(zip(samples["wrapped"], samples["bare"], strict=True))
    diffs = [w[0] - b[0] for w, b in pairs]
    side = {
        mode: {
            "median_ns": statistics.median(wall for wall, _ in samples[mode]),
            "cpu_median_ns": statistics.median(cpu for _, cpu in samples[mode]),
        }
        for mode in samples
    }
    return CaseResult(
        statistics.median(diffs),
        "ns/op",
        diffs,
        {
            **info,
            "bare": side["bare"],
            "wrapped": side["wrapped"],
            "cpu_overhead_ns": statistics.median(w[1] - b[1] for w, b in pairs),
            "requests_per_batch": n,
            "rounds": len(pairs),
        },
    )


# ---------------------------------------------------------------- Flask (raw WSGI calls)
def _flask_app() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        return "ok"

    return app


def _wsgi_runner(app: Any, switch: Callable[[Mode], None]) -> Runner:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def run(mode: Mode, n: int) -> None:
        switch(mode)
        for _ in itertools.repeat(None, n):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            body.close()

    return run


def _swap_hooks(app: Any) -> Callable[[Mode], None]:
    """Switch the app's request hooks as registered now (wrapped) or none at all (bare)."""
    registered = {name: getattr(app, name) for name in _HOOK_TABLES}
    empty: dict[str, defaultdict[object, list[object]]] = {
        name: defaultdict(list) for name in _HOOK_TABLES
    }

    def switch(mode: Mode) -> None:
        for name in _HOOK_TABLES:
            setattr(app, name, registered[name] if mode == "wrapped" else empty[name])

    return switch


def flask_hooks(settings: Settings) -> CaseResult:
    """The reference: a no-op ``before_request`` and a no-op ``after_request`` hook."""
    app = _flask_app()
    app.before_request(lambda: None)
    app.after_request(lambda response: response)
    run = _wsgi_runner(app, _swap_hooks(app))
    return paired_overhead(run, settings, {"hooks": "before_request + after_request, no-op"})


def flask_ours(settings: Settings) -> CaseResult:
    from profilis import __version__
    from profilis.core.async_collector import AsyncCollector
    from profilis.flask.adapter import ProfilisFlask

    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-ours"
    )
    app = _flask_app()
    bare_wsgi_app = app.wsgi_app
    ProfilisFlask(app, collector=collector)
    ours_wsgi_app = app.wsgi_app

    def switch(mode: Mode) -> None:
        app.wsgi_app = ours_wsgi_app if mode == "wrapped" else bare_wsgi_app

    try:
        result = paired_overhead(
            _wsgi_runner(app, switch),
            settings,
            {"profilis": __version__},
            settle=lambda: collector.flush(timeout=10.0),
        )
        collector.flush(timeout=10.0)
        result.info["dropped"] = dict(collector.health().dropped)
    finally:
        collector.close(timeout=5.0)
    return result


def flask_peer(settings: Settings) -> CaseResult:
    collector = _peer("core.async_collector").AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-peer"
    )
    app = _flask_app()
    _peer("flask.adapter").ProfilisFlask(app, collector=collector, sample=1.0)
    try:
        result = paired_overhead(
            _wsgi_runner(app, _swap_hooks(app)),
            settings,
            # 1.0.0 queues a REQ, an FN and a REQ_META event per request; ours queues one.
            {"profilis": PEER_VERSION, "events_per_call": 3},
            settle=lambda: wait_until_empty(lambda: collector.queue_depth),
        )
    finally:
        collector.close(timeout=5.0)
    return result


# ---------------------------------------------------------------- Starlette (direct ASGI calls)
def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def user(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/users/{user_id:int}", user)])


@contextlib.contextmanager
def _asgi_runner(bare: Any, wrapped: Any) -> Iterator[Runner]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, object]:
        return request

    async def send(message: object) -> None:
        pass

    async def serve(app: Any, n: int) -> None:
        for _ in itertools.repeat(None, n):
            # Routing writes into the scope, as it does for every request a server hands over.
            await app(dict(scope), receive, send)

    loop = asyncio.new_event_loop()

    def run(mode: Mode, n: int) -> None:
        loop.run_until_complete(serve(wrapped if mode == "wrapped" else bare, n))

    try:
        yield run
    finally:
        loop.close()


ASGIMessage = MutableMapping[str, Any]
ASGIApp = Callable[
    [ASGIMessage, Callable[[], Awaitable[ASGIMessage]], Callable[[ASGIMessage], Awaitable[None]]],
    Awaitable[None],
]


class TimingOnlyASGI:
    """The floor for an ASGI timing middleware: perf_counter_ns around the app, the status
    caught from ``http.response.start``, one small tuple appended to a deque. No routing,
    ids, sampling or event dict: what "within 2x of a timing-only middleware" is held to."""

    def __init__(self, app: ASGIApp, records: deque[tuple[str, int, int]]) -> None:
        self.app = app
        self.records = records

    async def __call__(
        self,
        scope: ASGIMessage,
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_status(message: ASGIMessage) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.records.append((scope["path"], status, time.perf_counter_ns() - start))


def asgi_timing(settings: Settings) -> CaseResult:
    app = _starlette_app()
    records: deque[tuple[str, int, int]] = deque(maxlen=EMIT_QUEUE_SIZE)
    with _asgi_runner(app, TimingOnlyASGI(app, records)) as run:
        return paired_overhead(run, settings, {"middleware": "timing only, one tuple/request"})


def asgi_ours(settings: Settings) -> CaseResult:
    from profilis import __version__
    from profilis.asgi import ProfilisASGI
    from profilis.core.async_collector import AsyncCollector

    collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-ours"
    )
    app = _starlette_app()
    try:
        with _asgi_runner(app, ProfilisASGI(app, collector=collector)) as run:
            result = paired_overhead(
                run,
                settings,
                {"profilis": __version__},
                settle=lambda: collector.flush(timeout=10.0),
            )
    finally:
        collector.close(timeout=5.0)
    return result


def asgi_peer(settings: Settings) -> CaseResult:
    collector = _peer("core.async_collector").AsyncCollector(
        discard, queue_size=EMIT_QUEUE_SIZE, name="bench-peer"
    )
    emitter = _peer("core.emitter").Emitter(collector)
    middleware = _peer("asgi.middleware")
    app = _starlette_app()
    wrapped = middleware.ProfilisASGIMiddleware(app, emitter, middleware.ASGIConfig())
    try:
        with _asgi_runner(app, wrapped) as run:
            result = paired_overhead(
                run,
                settings,
                {"profilis": PEER_VERSION},
                settle=lambda: wait_until_empty(lambda: collector.queue_depth),
            )
    finally:
        collector.close(timeout=5.0)
    return result
