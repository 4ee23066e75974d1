"""The patches that tell the agent what role a server gives its process, and time bare WSGI apps.

- gunicorn: ``Arbiter.__init__`` marks the master (it supervises, never counts as a worker,
  even when ``--preload`` builds a collector in it); ``Worker.load_wsgi`` runs in every worker
  once it has its app, whatever the worker class (sync, gthread, uvicorn's): the worker starts
  reporting there, and a plain WSGI callable (not a Flask or ASGI app, which their own patches
  time) is wrapped in ``ProfilisWSGI``.
- uvicorn: ``Server.serve`` runs in every serving process (single, ``--workers`` children,
  and under gunicorn's ``UvicornWorker``): it starts reporting.

Fork safety comes from the collector and exporter themselves (``os.register_at_fork``); the
roles only decide who sends heartbeats (see ``_agent``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from profilis.agent._agent import Agent
from profilis.agent._frameworks import AGENT_TIMED_KEY
from profilis.agent._patching import Method, wrap_method

__all__ = [
    "patch_gunicorn_arbiter",
    "patch_gunicorn_asgi_worker",
    "patch_gunicorn_worker",
    "patch_uvicorn_server",
    "wrap_wsgi_app",
]


def patch_gunicorn_arbiter(agent: Agent, module: ModuleType) -> None:
    """``gunicorn.arbiter``: the process that builds an Arbiter is the master."""

    def make(original_init: Method) -> Method:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            # Before the original: with --preload the app is imported inside it.
            agent.supervising()
            original_init(self, *args, **kwargs)

        return __init__

    wrap_method(module.Arbiter, "__init__", make)


def patch_gunicorn_worker(agent: Agent, module: ModuleType) -> None:
    """``gunicorn.workers.base``: each worker reports from boot, and bare WSGI apps are timed."""

    def make(original_load: Method) -> Method:
        def load_wsgi(self: Any) -> None:
            original_load(self)
            # After the original: the app is loaded (imported here without --preload) and
            # gunicorn has switched user, so files the exporters open belong to the worker.
            if agent.enabled("wsgi"):
                self.wsgi = wrap_wsgi_app(agent, self.wsgi)
            agent.serving()

        return load_wsgi

    wrap_method(module.Worker, "load_wsgi", make)


def patch_gunicorn_asgi_worker(agent: Agent, module: ModuleType) -> None:
    """``gunicorn.workers.gasgi``: gunicorn's own ASGI worker loads its app its own way."""

    def make(original_load: Method) -> Method:
        def load_wsgi(self: Any) -> None:
            original_load(self)
            agent.serving()

        return load_wsgi

    wrap_method(module.ASGIWorker, "load_wsgi", make)


def patch_uvicorn_server(agent: Agent, module: ModuleType) -> None:
    """``uvicorn.server``: every process that runs ``Server.serve`` is a worker."""

    def make(original_serve: Method) -> Method:
        async def serve(self: Any, *args: Any, **kwargs: Any) -> None:
            agent.serving()
            await original_serve(self, *args, **kwargs)

        return serve

    wrap_method(module.Server, "serve", make)


def wrap_wsgi_app(agent: Agent, app: object) -> Any:
    """``app`` timed by ``ProfilisWSGI`` when it is a plain WSGI callable; else ``app`` itself.

    Flask apps are left to the Flask patch and ASGI apps (gunicorn with an ASGI worker) to the
    Starlette one. Never raises: on failure the app is returned as it came.
    """
    try:
        if not callable(app) or _is_known_app(app):
            return app
        emitter = agent.emitter()
        if emitter is None:
            return app
        from profilis.wsgi import ProfilisWSGI

        resolver = None
        if "flask" in sys.modules:  # a Flask app inside other middleware still has its rules
            from profilis.flask.adapter import flask_route

            resolver = flask_route
        config = agent.config
        timed = ProfilisWSGI(
            app,
            emitter=emitter,
            sample=config.sample_rate,
            exclude_routes=config.exclude_routes,
            route_resolver=resolver,
        )
        return _MarkedWSGI(timed)
    except Exception as exc:
        agent.failed("wsgi", exc)
        return app


def _is_known_app(app: object) -> bool:
    if isinstance(app, _MarkedWSGI) or _is_async(app):
        return True
    return any(isinstance(app, cls) for cls in _framework_app_types())


def _is_async(app: object) -> bool:
    import inspect  # here: costly to import, and only needed once per worker

    # An ASGI app is a coroutine function, or an object whose __call__ is one.
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
        getattr(app, "__call__", None)  # noqa: B004 - the method itself is what we inspect
    )


def _framework_app_types() -> Iterable[type]:
    """App classes other patches handle; only of frameworks the process has imported."""
    for module_name, class_name in (
        ("flask.app", "Flask"),
        ("starlette.applications", "Starlette"),
        ("profilis.wsgi", "ProfilisWSGI"),
    ):
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            yield cls


class _MarkedWSGI:
    """The agent's outer WSGI timing: marks the environ so inner Flask apps are not re-timed."""

    __slots__ = ("_timed",)

    def __init__(self, timed: Callable[[dict[str, Any], Any], Any]) -> None:
        self._timed = timed

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[AGENT_TIMED_KEY] = True
        return self._timed(environ, start_response)
