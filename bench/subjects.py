"""What ``bench.instructions`` counts: each hot-path row's operation, built as its case does.

A subject is two loops over the very same objects and inputs as the wall-clock row in
``bench.cases_*``: ``op(n)`` runs the operation ``n`` times, ``bare(n)`` runs ``n`` times
what the row subtracts (the empty timing loop, the undecorated function, the app without
its instrumentation). Standard library only at import time: peer rows build in the peer venv.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.measure import compile_loop
from bench.workload import (
    DB_QUERY,
    DB_VENDOR,
    DUR_NS,
    EMIT_QUEUE_SIZE,
    FN_NAME,
    ROUTE,
    STATUS,
    discard,
)

if TYPE_CHECKING:
    from bench.cases_adapters import Mode, Runner

__all__ = ["SUBJECTS", "Subject"]

Loop = Callable[[int], None]


@dataclass(frozen=True)
class Subject:
    """``op(n)`` minus ``bare(n)``, divided by ``n``, is the row's per-operation cost."""

    op: Loop
    bare: Loop
    #: What must live as long as the loops (an open event loop's context manager).
    keep_alive: tuple[object, ...] = ()


def _statement(stmt: str, namespace: Mapping[str, object]) -> Subject:
    """The wall-clock rows' generated loop, against its empty twin (``stmt="pass"``)."""
    values = dict(namespace)
    names = sorted(values)
    loop, empty = compile_loop(stmt, names), compile_loop("pass", names)
    clock = time.perf_counter_ns

    def op(n: int) -> None:
        loop(n, clock, clock, **values)

    def bare(n: int) -> None:
        empty(n, clock, clock, **values)

    return Subject(op=op, bare=bare)


def _wrapped(wrap: Callable[[Callable[[int], int]], Callable[[int], int]]) -> Subject:
    """As ``measure.time_wrapper_overhead``: a trivial function decorated, against it bare."""

    def work(x: int) -> int:
        return x

    def work_wrapped(x: int) -> int:
        return x

    bare, wrapped = (
        _statement("fn(1)", {"fn": work}),
        _statement("fn(1)", {"fn": wrap(work_wrapped)}),
    )
    return Subject(op=wrapped.op, bare=bare.op)


def _ours_collector() -> Any:
    from profilis.core.async_collector import AsyncCollector

    return AsyncCollector(discard, queue_size=EMIT_QUEUE_SIZE, name="bench-ours")


def _peer_collector() -> Any:
    from bench.cases_peer import _peer

    collector_type = _peer("core.async_collector").AsyncCollector
    return collector_type(discard, queue_size=EMIT_QUEUE_SIZE, name="bench-peer")


def floor() -> Subject:
    from bench.cases_baseline import _make_floor_emit

    return _statement(
        "emit(route, status, dur_ns)",
        {"emit": _make_floor_emit(), "route": ROUTE, "status": STATUS, "dur_ns": DUR_NS},
    )


def _ours_emit(method: str, stmt: str, args: Mapping[str, object]) -> Subject:
    from profilis.core.emitter import Emitter

    return _statement(stmt, {"emit": getattr(Emitter(_ours_collector()), method), **args})


def ours_emit_http() -> Subject:
    args = {"route": ROUTE, "status": STATUS, "dur_ns": DUR_NS}
    return _ours_emit("emit_http", "emit(route, status, dur_ns)", args)


def ours_emit_fn() -> Subject:
    return _ours_emit("emit_fn", "emit(fn, dur_ns)", {"fn": FN_NAME, "dur_ns": DUR_NS})


def ours_emit_db() -> Subject:
    args = {"query": DB_QUERY, "dur_ns": DUR_NS, "vendor": DB_VENDOR}
    return _ours_emit("emit_db", "emit(query, dur_ns, rows=1, db_vendor=vendor)", args)


def peer_emit_req() -> Subject:
    from bench.cases_peer import _peer

    emit = _peer("core.emitter").Emitter(_peer_collector()).emit_req
    return _statement(
        "emit(route, status, dur_ns)",
        {"emit": emit, "route": ROUTE, "status": STATUS, "dur_ns": DUR_NS},
    )


def otel_span() -> Subject:
    from bench.cases_baseline import make_otel_tracer_provider

    start_span = make_otel_tracer_provider().get_tracer("bench").start_span
    return _statement('start_span("x").end()', {"start_span": start_span})


def prometheus_observe() -> Subject:
    from bench.cases_baseline import PROMETHEUS_STMT, make_prometheus_observe

    return _statement(PROMETHEUS_STMT, make_prometheus_observe())


def ours_decorator() -> Subject:
    from profilis.core.emitter import Emitter
    from profilis.decorators.profile import profile

    return _wrapped(profile(Emitter(_ours_collector())))


def peer_decorator() -> Subject:
    from bench.cases_peer import _peer

    emitter = _peer("core.emitter").Emitter(_peer_collector())
    return _wrapped(_peer("decorators.profile").profile_function(emitter))


def handrolled_decorator() -> Subject:
    from bench.cases_baseline import make_handrolled_profile

    return _wrapped(make_handrolled_profile(deque(maxlen=EMIT_QUEUE_SIZE)))


def _runner_subject(run: Runner, *keep_alive: object) -> Subject:
    """An adapter row's ``run(mode, n)`` (``bench.cases_adapters``) as op and bare loops."""
    return Subject(lambda n: run("wrapped", n), lambda n: run("bare", n), keep_alive)


def flask_hooks() -> Subject:
    from bench.cases_adapters import _flask_app, _swap_hooks, _wsgi_runner

    app = _flask_app()
    app.before_request(lambda: None)
    app.after_request(lambda response: response)
    return _runner_subject(_wsgi_runner(app, _swap_hooks(app)))


def flask_ours() -> Subject:
    from bench.cases_adapters import _flask_app, _wsgi_runner
    from profilis.flask.adapter import ProfilisFlask

    app = _flask_app()
    bare_wsgi_app = app.wsgi_app
    ProfilisFlask(app, collector=_ours_collector())
    ours_wsgi_app = app.wsgi_app

    def switch(mode: Mode) -> None:
        app.wsgi_app = ours_wsgi_app if mode == "wrapped" else bare_wsgi_app

    return _runner_subject(_wsgi_runner(app, switch))


def flask_peer() -> Subject:
    from bench.cases_adapters import _flask_app, _swap_hooks, _wsgi_runner
    from bench.cases_peer import _peer

    app = _flask_app()
    _peer("flask.adapter").ProfilisFlask(app, collector=_peer_collector(), sample=1.0)
    return _runner_subject(_wsgi_runner(app, _swap_hooks(app)))


def _asgi_subject(app: Any, wrapped: Any) -> Subject:
    from bench.cases_adapters import _asgi_runner

    # Never closed (garbage collecting it would): the counting process ends right after
    # the measured loop, with os._exit.
    runner = _asgi_runner(app, wrapped)
    return _runner_subject(runner.__enter__(), runner)


def asgi_ours() -> Subject:
    from bench.cases_adapters import _starlette_app
    from profilis.asgi import ProfilisASGI

    app = _starlette_app()
    return _asgi_subject(app, ProfilisASGI(app, collector=_ours_collector()))


def asgi_peer() -> Subject:
    from bench.cases_adapters import _starlette_app
    from bench.cases_peer import _peer

    emitter = _peer("core.emitter").Emitter(_peer_collector())
    middleware = _peer("asgi.middleware")
    app = _starlette_app()
    return _asgi_subject(
        app, middleware.ProfilisASGIMiddleware(app, emitter, middleware.ASGIConfig())
    )


def asgi_timing() -> Subject:
    from bench.cases_adapters import TimingOnlyASGI, _starlette_app

    app = _starlette_app()
    return _asgi_subject(app, TimingOnlyASGI(app, deque(maxlen=EMIT_QUEUE_SIZE)))


#: Case name (``bench.registry``) -> the builder of its subject.
SUBJECTS: dict[str, Callable[[], Subject]] = {
    "floor": floor,
    "ours_emit_http": ours_emit_http,
    "ours_emit_fn": ours_emit_fn,
    "ours_emit_db": ours_emit_db,
    "peer_emit_req": peer_emit_req,
    "otel_span": otel_span,
    "prometheus_observe": prometheus_observe,
    "ours_decorator": ours_decorator,
    "peer_decorator": peer_decorator,
    "handrolled_decorator": handrolled_decorator,
    "flask_hooks": flask_hooks,
    "flask_ours": flask_ours,
    "flask_peer": flask_peer,
    "asgi_ours": asgi_ours,
    "asgi_peer": asgi_peer,
    "asgi_timing": asgi_timing,
}
