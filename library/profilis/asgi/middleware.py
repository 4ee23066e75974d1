"""Profilis 1.x's ``profilis.asgi.middleware``, kept for migrating users (deprecated).

``ProfilisASGIMiddleware(app, emitter, ASGIConfig(...))`` still works and records 2.0 HTTP
events through ``profilis.asgi.ProfilisASGI``; importing either name warns, naming the
replacement. Importing this module alone does not.
"""

from __future__ import annotations

from typing import Final

from profilis._compat import deprecated_getattr

__all__: list[str] = []  # only deprecated 1.x names live here: see _V1_NAMES

_ASGI = "profilis.asgi.ProfilisASGI"
_ARGS = "profilis.asgi.ProfilisASGI(sample=, exclude_routes=)"
_SAMPLING = "the sample= and exclude_routes= arguments of profilis.asgi.ProfilisASGI"


def _v1(name: str) -> object:
    from profilis.asgi import _v1

    return getattr(_v1, name)


def _sampling(name: str) -> object:
    from profilis import sampling

    return getattr(sampling, name)


def _runtime(name: str) -> object:
    from profilis import runtime

    return getattr(runtime, name)


def _emitter() -> object:
    from profilis.core.emitter import Emitter

    return Emitter


_V1_NAMES: Final = {
    "ProfilisASGIMiddleware": (lambda: _v1("ProfilisASGIMiddleware"), _ASGI),
    "ASGIConfig": (lambda: _v1("ASGIConfig"), _ARGS),
    "RequestInfo": (lambda: _v1("RequestInfo"), _ASGI),
    "HTTP_ERROR_STATUS_THRESHOLD": (lambda: 500, _SAMPLING),
    "DEFAULT_ERROR_STATUS": (lambda: 500, _ASGI),
    "clamp_sampling_rate": (lambda: _sampling("_clamp_sampling_rate"), _SAMPLING),
    "get_effective_rate": (lambda: _sampling("_get_effective_rate"), _SAMPLING),
    "make_rng": (lambda: _sampling("_make_rng"), _SAMPLING),
    "sampling_should_exclude_route": (lambda: _sampling("_should_exclude_route"), _SAMPLING),
    "sampling_should_record_request": (lambda: _sampling("_should_record_request"), _SAMPLING),
    "sampling_should_sample_request": (lambda: _sampling("_should_sample_request"), _SAMPLING),
    "Emitter": (_emitter, "profilis.core.emitter.Emitter"),
    "now_ns": (lambda: _runtime("now_ns"), "profilis.runtime.now_ns"),
    "get_current_parent_span_id": (
        lambda: _runtime("get_current_parent_span_id"),
        "profilis.runtime.get_current_parent_span_id",
    ),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)


def __dir__() -> list[str]:
    return sorted([*globals(), *_V1_NAMES])
