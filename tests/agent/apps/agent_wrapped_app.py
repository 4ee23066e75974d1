"""The Flask app behind a plain WSGI middleware, as Sentry's or WhiteNoise's wrappers leave it.

gunicorn loads the middleware, not a Flask app: the agent's WSGI wrapper times it, and the
Flask app inside must neither be timed a second time nor lose its route templates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent_flask_app import app as flask_app


class Middleware:
    def __init__(self, wrapped: Callable[..., Iterable[bytes]]) -> None:
        self.wrapped = wrapped

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self.wrapped(environ, start_response)


app = Middleware(flask_app)
