"""The Profilis 1.x sampling helpers, kept for migrating users (deprecated).

1.x shared these between its ASGI and Sanic adapters: a global rate, route excludes by
prefix or ``re:`` regex, per-route rate overrides, and "always record 5xx". Profilis 2
samples inside the adapters (``sample=``, ``exclude_routes=``); what is left here serves the
1.x ASGI middleware (``profilis.asgi.middleware``) and code that called these directly.
Every public name warns once per call site; the implementations are the ``_`` ones.
"""

from __future__ import annotations

import random as _random_module
import re
from collections.abc import Callable, Iterable
from typing import Final

from profilis._compat import deprecated_getattr

__all__: list[str] = []  # nothing here is 2.0 API: see _V1_NAMES

_REGEX_PREFIX: Final = "re:"
_HTTP_ERROR_STATUS_THRESHOLD: Final = 500

#: A compiled route pattern: ("prefix", str) or ("regex", re.Pattern).
_CompiledExclude = tuple[str, "str | re.Pattern[str]"]
_CompiledOverride = tuple[str, "str | re.Pattern[str]", float]


def _pattern(text: str) -> tuple[str, str | re.Pattern[str]]:
    if text.startswith(_REGEX_PREFIX):
        try:
            return "regex", re.compile(text[len(_REGEX_PREFIX) :])
        except re.error:  # as 1.x did: a bad regex is taken as a literal prefix
            pass
    return "prefix", text


def _matches(pattern: str | re.Pattern[str], path: str) -> bool:
    if isinstance(pattern, str):
        return path.startswith(pattern)
    return pattern.search(path) is not None


def _compile_excludes(excludes: Iterable[str] | None) -> list[_CompiledExclude]:
    """Route excludes, compiled: plain strings are prefixes, ``re:...`` a regex."""
    return [_pattern(text) for text in excludes or () if text]


def _compile_overrides(overrides: Iterable[tuple[str, float]] | None) -> list[_CompiledOverride]:
    """Per-route rates, compiled; a rate outside [0, 1] is skipped (as in 1.x)."""
    compiled: list[_CompiledOverride] = []
    for text, rate in overrides or ():
        value = float(rate)
        if text and 0.0 <= value <= 1.0:
            compiled.append((*_pattern(text), value))
    return compiled


def _should_exclude_route(path: str, compiled: Iterable[_CompiledExclude]) -> bool:
    return any(_matches(pattern, path) for _, pattern in compiled)


def _get_effective_rate(
    path: str, compiled_overrides: Iterable[_CompiledOverride], default_rate: float
) -> float:
    """The rate of the first override matching ``path``, else ``default_rate``."""
    for _, pattern, rate in compiled_overrides:
        if _matches(pattern, path):
            return rate
    return default_rate


def _should_sample_request(rate: float, rng: Callable[[], float]) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return rng() <= rate  # 1.x's comparison, so seeded 1.x tests keep their draws


def _should_record_request(
    sampled: bool,
    status_code: int | None,
    error_info: object | None,
    always_sample_errors: bool,
    error_threshold: int = _HTTP_ERROR_STATUS_THRESHOLD,
) -> bool:
    """Sampled, or a failure (exception or status >= threshold) kept by ``always_sample_errors``."""
    failed = error_info is not None or int(status_code or 0) >= error_threshold
    return sampled or (always_sample_errors and failed)


def _make_rng(
    random_seed: int | None = None, rng: Callable[[], float] | None = None
) -> Callable[[], float]:
    """``rng`` if given, else a generator seeded with ``random_seed``, else the shared one."""
    if rng is not None:
        return rng
    if random_seed is not None:
        return _random_module.Random(random_seed).random
    return _random_module.random


def _clamp_sampling_rate(rate: float) -> float:
    """``rate`` as a float; ValueError outside [0, 1] (1.x's name: it never clamped)."""
    value = float(rate)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"sampling_rate must be in [0.0, 1.0], got {rate}")
    return value


class _Settings:
    """The settings 1.x's ``ASGIConfig`` and ``SanicConfig`` shared, checked as 1.x did."""

    def __init__(
        self,
        *,
        sampling_rate: float = 1.0,
        route_excludes: Iterable[str] | None = None,
        route_overrides: Iterable[tuple[str, float]] | None = None,
        always_sample_errors: bool = True,
        random_seed: int | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.sampling_rate = _clamp_sampling_rate(sampling_rate)
        self.route_excludes = list(route_excludes or [])
        self.route_overrides = list(route_overrides or [])
        self.always_sample_errors = bool(always_sample_errors)
        self.random_seed = random_seed
        self.rng = rng


_ADAPTER_ARGS = "the sample= and exclude_routes= arguments of the Profilis 2 adapters"
_V1_NAMES: Final = {
    "REGEX_PREFIX": (lambda: _REGEX_PREFIX, _ADAPTER_ARGS),
    "HTTP_ERROR_STATUS_THRESHOLD": (lambda: _HTTP_ERROR_STATUS_THRESHOLD, _ADAPTER_ARGS),
    "clamp_sampling_rate": (lambda: _clamp_sampling_rate, _ADAPTER_ARGS),
    "get_effective_rate": (lambda: _get_effective_rate, _ADAPTER_ARGS),
    "make_rng": (lambda: _make_rng, _ADAPTER_ARGS),
    "should_exclude_route": (lambda: _should_exclude_route, _ADAPTER_ARGS),
    "should_record_request": (lambda: _should_record_request, _ADAPTER_ARGS),
    "should_sample_request": (lambda: _should_sample_request, _ADAPTER_ARGS),
    "random": (lambda: _random_module.random, "random.random"),
}
__getattr__ = deprecated_getattr(__name__, _V1_NAMES)


def __dir__() -> list[str]:
    return sorted([*globals(), *_V1_NAMES])
