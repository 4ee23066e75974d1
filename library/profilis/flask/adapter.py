"""``ProfilisFlask``: one HTTP event per Flask request, labelled with the matched URL rule.

It wraps ``app.wsgi_app`` in ``profilis.wsgi.ProfilisWSGI`` (the timing itself is the shared
core's), adds no before/after-request hooks, and reads the rule (``/users/<int:id>``) from the
request object Werkzeug leaves in the environ. Exceptions that Flask turns into a 500 are
named through the ``got_request_exception`` signal, which costs nothing until one happens.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, request
from flask.signals import got_request_exception

from profilis._http import ERROR_ENVIRON_KEY, ROUTE_ENVIRON_KEY, HttpTiming
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.wsgi import ProfilisWSGI

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "HTTP_BAD_REQUEST",
    "HTTP_INTERNAL_SERVER_ERROR",
    "HTTP_OK",
    "ProfilisFlask",
    "flask_route",
]

# Status constants Profilis 1.x exported from this module; kept so 1.x imports still work.
HTTP_OK: Final = 200
HTTP_BAD_REQUEST: Final = 400
HTTP_INTERNAL_SERVER_ERROR: Final = 500

#: Where ``ProfilisFlask`` keeps itself in ``app.extensions``.
EXTENSION_KEY = "profilis"


def flask_route(environ: WSGIEnvironment) -> str | None:
    """The URL rule Flask matched for the request in ``environ`` (None if none matched).

    Valid while Flask's request context is alive, which includes the moment it calls
    ``start_response`` (it drops the reference when the context ends).
    """
    # Werkzeug registers each Request under this key; Flask stores the matched rule on it.
    # One dict lookup and two attributes: cheaper than going through flask.request.
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    return None if rule is None else rule.rule


def _note_exception(sender: Flask, exception: BaseException, **extra: object) -> None:
    """``got_request_exception`` receiver: note what the request context still knows.

    Flask either sends a 500 itself (the type name says why) or, when it propagates
    exceptions, ends the request context before ``start_response`` could name the route.
    """
    try:
        environ = request.environ
        environ[ERROR_ENVIRON_KEY] = type(exception).__name__
        route = flask_route(environ)
        if route is not None:
            environ[ROUTE_ENVIRON_KEY] = route
    except Exception:  # outside a request context: nothing to note
        pass


class ProfilisFlask:
    """Instruments a Flask app: ``ProfilisFlask(app, collector=c, exclude_routes=["/health"])``.

    Pass ``collector=`` (an ``AsyncCollector``) or ``emitter=``. ``sample`` is the fraction
    of requests recorded, in [0, 1]; ``exclude_routes`` lists path prefixes never recorded;
    left out, they are ``PROFILIS_SAMPLE_RATE`` and ``PROFILIS_EXCLUDE_ROUTES`` (else all).
    Unmatched requests (404s) are labelled ``<unmatched>``. Request bodies are never read
    and streamed responses pass through unbuffered. ``init_app`` supports app factories.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        collector: AsyncCollector[dict[str, Any]] | None = None,
        emitter: Emitter | None = None,
        exclude_routes: Iterable[str] | None = None,
        sample: float | None = None,
    ) -> None:
        # Checked now, so a bad setting fails here rather than at init_app or a request.
        timing = HttpTiming(
            emitter=emitter, collector=collector, sample=sample, exclude_routes=exclude_routes
        )
        self.emitter = timing.emitter
        self.sample = timing.sample
        self.exclude_routes = timing.exclude_routes
        self.app: Flask | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app``; an app can be instrumented once."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(f"Flask app {app.name!r} is already instrumented by Profilis")
        app.wsgi_app = ProfilisWSGI(  # type: ignore[method-assign]
            app.wsgi_app,
            emitter=self.emitter,
            sample=self.sample,
            exclude_routes=self.exclude_routes,
            route_resolver=flask_route,
        )
        # Only this app's exceptions: another app in the process may not be instrumented.
        got_request_exception.connect(_note_exception, app)
        app.extensions[EXTENSION_KEY] = self
        if self.app is None:
            self.app = app
