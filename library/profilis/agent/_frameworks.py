"""The patches that instrument Flask, Starlette/FastAPI and SQLAlchemy without app code.

Each ``patch_*`` runs when its framework module has been imported (``_hooks``) and replaces
one method of one class, so apps created before or after, in any import order, are covered:

- Flask: ``Flask.__call__`` times an app from its first request on, through the same
  ``ProfilisWSGI`` and route resolver as ``profilis.flask``; an app that instruments itself
  with ``ProfilisFlask`` is left alone, and one already timed by the agent's WSGI wrapper
  (``_servers``, e.g. inside other middleware) is not timed twice.
- Starlette and FastAPI: ``build_middleware_stack`` (run at the app's first call, the
  lifespan included) puts ``ProfilisASGI`` first among the user middleware, where
  ``profilis.fastapi`` puts it, without leaving a trace in ``app.user_middleware``.
- SQLAlchemy: ``Engine.__init__`` instruments every engine, sync or inside an AsyncEngine.

The adapters are imported on first use, when their framework is already loaded.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, Final

from profilis.agent._agent import Agent
from profilis.agent._patching import Method, wrap_method

__all__ = [
    "AGENT_TIMED_KEY",
    "patch_fastapi",
    "patch_flask",
    "patch_sqlalchemy",
    "patch_starlette",
]

#: Set in the WSGI environ by the agent's outer WSGI wrapper: the request is timed already.
AGENT_TIMED_KEY: Final = "profilis.agent.timed"
#: Where a Flask app keeps its timing wrapper (or ``_NOT_TIMED``), decided at its first call.
_FLASK_TIMED_ATTR: Final = "_profilis_agent_wsgi"
_NOT_TIMED: Final = False

_flask_lock = threading.Lock()


# --------------------------------------------------------------------------- Flask
def patch_flask(agent: Agent, module: ModuleType) -> None:
    """``flask.app`` is imported: time every Flask app from its first request."""

    def make(original_call: Method) -> Method:
        def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
            timed = self.__dict__.get(_FLASK_TIMED_ATTR)
            if timed is None:
                timed = _time_flask_app(agent, self, original_call)
            if timed is _NOT_TIMED or AGENT_TIMED_KEY in environ:
                return original_call(self, environ, start_response)
            return timed(environ, start_response)

        return __call__

    wrap_method(module.Flask, "__call__", make)


def _time_flask_app(agent: Agent, app: Any, original_call: Method) -> Any:
    """Decide, once per app, how its requests are timed; the wrapper, or ``_NOT_TIMED``."""
    with _flask_lock:  # two first requests at once (threaded workers) decide once
        timed = app.__dict__.get(_FLASK_TIMED_ATTR)
        if timed is not None:
            return timed
        timed = _NOT_TIMED
        try:
            timed = _flask_wrapper(agent, app, original_call)
        except Exception as exc:
            agent.failed("flask", exc)
        app.__dict__[_FLASK_TIMED_ATTR] = timed
        return timed


def _flask_wrapper(agent: Agent, app: Any, original_call: Method) -> Any:
    if not agent.enabled("flask"):
        return _NOT_TIMED
    from flask.signals import got_request_exception

    from profilis.flask.adapter import EXTENSION_KEY, _note_exception, flask_route
    from profilis.wsgi import ProfilisWSGI

    # Names the exception behind a 500 for whichever wrapper times the request, ours or an
    # outer one; connected before the check below, so it serves the outer one too.
    got_request_exception.connect(_note_exception, app)
    if EXTENSION_KEY in app.extensions:  # the app runs ProfilisFlask itself
        return _NOT_TIMED
    emitter = agent.emitter()
    if emitter is None:
        return _NOT_TIMED
    config = agent.config
    return ProfilisWSGI(
        # Through Flask.__call__, so a wsgi_app replaced later (ProxyFix) is still used.
        functools.partial(original_call, app),
        emitter=emitter,
        sample=config.sample_rate,
        exclude_routes=config.exclude_routes,
        route_resolver=flask_route,
    )


# --------------------------------------------------------------------------- Starlette
def patch_starlette(agent: Agent, module: ModuleType) -> None:
    """``starlette.applications`` is imported: time every Starlette app (FastAPI's base)."""
    wrap_method(module.Starlette, "build_middleware_stack", _middleware_stack_builder(agent))


def patch_fastapi(agent: Agent, module: ModuleType) -> None:
    """``fastapi.applications`` is imported: FastAPI builds its stack without Starlette's."""
    if "build_middleware_stack" in module.FastAPI.__dict__:
        wrap_method(module.FastAPI, "build_middleware_stack", _middleware_stack_builder(agent))


def _middleware_stack_builder(agent: Agent) -> Callable[[Method], Method]:
    def make(original_build: Method) -> Method:
        def build_middleware_stack(self: Any) -> Any:
            ours = _asgi_middleware(agent, self.user_middleware)
            if ours is None:
                return original_build(self)
            # Ours is added only for the build, so the app's own list never shows it (and a
            # second build does not find it there and add it twice).
            saved = self.user_middleware
            self.user_middleware = [ours, *saved]
            try:
                return original_build(self)
            finally:
                self.user_middleware = saved

        return build_middleware_stack

    return make


def _asgi_middleware(agent: Agent, user_middleware: Iterable[Any]) -> Any:
    """A ``starlette.middleware.Middleware`` for ``ProfilisASGI``, or None to add nothing."""
    if not agent.enabled("asgi"):
        return None
    try:
        from starlette.middleware import Middleware

        from profilis.asgi import ProfilisASGI

        if any(getattr(entry, "cls", None) is ProfilisASGI for entry in user_middleware):
            return None  # the app adds ProfilisASGI itself
        emitter = agent.emitter()
        if emitter is None:
            return None
        config = agent.config
        return Middleware(
            ProfilisASGI,
            emitter=emitter,
            sample=config.sample_rate,
            exclude_routes=config.exclude_routes,
        )
    except Exception as exc:
        agent.failed("asgi", exc)
        return None


# --------------------------------------------------------------------------- SQLAlchemy
def patch_sqlalchemy(agent: Agent, module: ModuleType) -> None:
    """``sqlalchemy.engine.base`` is imported: instrument every engine as it is created."""

    def make(original_init: Method) -> Method:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            _instrument_engine(agent, self)

        return __init__

    wrap_method(module.Engine, "__init__", make)


def _instrument_engine(agent: Agent, engine: Any) -> None:
    if not agent.enabled("sqlalchemy"):
        return
    try:
        emitter = agent.emitter()
        if emitter is None:
            return
        from profilis.sqlalchemy.instrumentation import instrument_engine

        instrument_engine(engine, emitter, redact=agent.config.redact)
    except Exception as exc:
        agent.failed("sqlalchemy", exc)
