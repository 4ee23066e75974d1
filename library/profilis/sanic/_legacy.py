"""``SanicConfig``: the Profilis 1.x settings of ``instrument_sanic_app``, still honoured.

Profilis 2 adapters take ``sample=`` and ``exclude_routes=``; 1.x code passed a
``SanicConfig`` whose policy (``re:`` regex excludes, per-route rates, "always record 5xx",
a seedable random source) is the 1.x sampling policy kept in ``profilis.sampling``.
``LegacySampling`` applies it for ``profilis.sanic.adapter``; nothing else is decided here.
"""

from __future__ import annotations

from profilis.sampling import (
    _compile_excludes,
    _compile_overrides,
    _get_effective_rate,
    _make_rng,
    _Settings,
    _should_exclude_route,
    _should_record_request,
    _should_sample_request,
)

__all__ = ["LegacySampling", "SanicConfig"]


class SanicConfig(_Settings):
    """Profilis 1.x settings for ``instrument_sanic_app`` (deprecated: pass ``sample=`` and
    ``exclude_routes=`` to it instead). Checked here, as in 1.x."""


class LegacySampling:
    """The 1.x decision for one request: left out, recorded, or recorded only if it fails."""

    __slots__ = ("_always_errors", "_excludes", "_overrides", "_rate", "_rng")

    def __init__(self, config: SanicConfig) -> None:
        self._rate = config.sampling_rate
        self._excludes = _compile_excludes(config.route_excludes)
        self._overrides = _compile_overrides(config.route_overrides)
        self._always_errors = config.always_sample_errors
        self._rng = _make_rng(random_seed=config.random_seed, rng=config.rng)

    def decide(self, path: str) -> bool | None:
        """None: not timed. True: recorded. False: timed, recorded only if it fails."""
        if _should_exclude_route(path, self._excludes):
            return None
        rate = _get_effective_rate(path, self._overrides, self._rate)
        if _should_sample_request(rate, self._rng):
            return True
        return False if self._always_errors else None

    def keeps_failure(self, status: int, error: str | None) -> bool:
        """Whether a request sampled out is recorded anyway (1.x: 5xx or an exception)."""
        return _should_record_request(False, status, error, self._always_errors)
