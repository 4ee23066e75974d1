"""The Profilis 1.x ASGI middleware and its ``ASGIConfig``, forwarding to ``ProfilisASGI``.

``profilis.asgi.middleware`` (and ``profilis.fastapi.adapter``) hand these out with a
deprecation warning. The timing is ``ProfilisASGI``'s; what 2.0 has no argument for (regex
excludes, per-route rates, recording sampled-out failures, a seeded draw) is decided here,
per request, before the request reaches one of two ``ProfilisASGI`` instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profilis.asgi import ASGIApp, ProfilisASGI, Receive, Scope, Send
from profilis.core.emitter import Emitter
from profilis.runtime.context import UNSAMPLED, RawContext, reset_current, set_current
from profilis.sampling import (
    _compile_excludes,
    _compile_overrides,
    _get_effective_rate,
    _make_rng,
    _Settings,
    _should_exclude_route,
    _should_sample_request,
)

__all__ = ["ASGIConfig", "ProfilisASGIMiddleware", "RequestInfo"]


@dataclass
class RequestInfo:
    """1.x's record of one request (2.0 builds the event directly; nothing fills this)."""

    method: str
    path: str
    route: str | None
    status_code: int | None
    dur_ns: int
    error_info: dict[str, str] | None


class ASGIConfig(_Settings):
    """1.x settings of ``ProfilisASGIMiddleware``. In 2.0, ``sampling_rate`` is
    ``ProfilisASGI(sample=)`` and prefix ``route_excludes`` are ``exclude_routes=``; the
    other fields have no 2.0 argument and are honoured by the 1.x middleware alone."""

    def as_profilis_asgi_kwargs(self) -> dict[str, Any] | None:
        """``ProfilisASGI`` keyword arguments meaning the same as this config, or None when
        it uses something only the 1.x middleware does (a regex or relative exclude, a
        per-route rate, a seeded draw, failures recorded below a sampling rate < 1)."""
        plain_excludes = all(e.startswith("/") for e in self.route_excludes)
        sampled = self.sampling_rate < 1.0
        if not plain_excludes or self.route_overrides or self.rng or self.random_seed is not None:
            return None
        if sampled and self.always_sample_errors:
            return None
        return {"sample": self.sampling_rate, "exclude_routes": tuple(self.route_excludes)}


class _FailuresOnly(Emitter):
    """An emitter passing on only failed requests (exception or 5xx): ``always_sample_errors``
    for requests the sampling left out."""

    __slots__ = ()

    def emit_http(
        self,
        route: str,
        status: int,
        dur_ns: int,
        method: str = "GET",
        error: str | None = None,
        bytes_in: int | None = None,
        bytes_out: int | None = None,
        context: RawContext | None = None,
    ) -> None:
        if error is not None or status >= 500:
            super().emit_http(route, status, dur_ns, method, error, bytes_in, bytes_out, context)


class ProfilisASGIMiddleware:
    """1.x ``ProfilisASGIMiddleware(app, emitter, config)``: one 2.0 HTTP event per recorded
    request (route template, method, status, ``error`` = exception type name)."""

    def __init__(self, app: ASGIApp, emitter: Emitter, config: ASGIConfig | None = None) -> None:
        self.app = app
        self.emitter = emitter
        self.cfg = config or ASGIConfig()
        self._excludes = _compile_excludes(self.cfg.route_excludes)
        self._overrides = _compile_overrides(self.cfg.route_overrides)
        self._rng = _make_rng(self.cfg.random_seed, self.cfg.rng)
        self._recorded: ASGIApp = ProfilisASGI(app, emitter=emitter)
        self._failures: ASGIApp | None = None
        if self.cfg.always_sample_errors:
            failures = ProfilisASGI(app, emitter=_FailuresOnly(emitter.collector))
            # Sampled out is sampled out for what the request causes, even when it fails.
            failures._hide_span = True
            self._failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 1.x decided on the raw path, before routing: so does this.
        path = scope.get("path") or "/"
        if not _should_exclude_route(path, self._excludes):
            rate = _get_effective_rate(path, self._overrides, self.cfg.sampling_rate)
            if _should_sample_request(rate, self._rng):
                await self._recorded(scope, receive, send)
                return
            if self._failures is not None:
                await self._failures(scope, receive, send)
                return
        # Not recorded: the DB and FN events the request causes are not either.
        token = set_current(UNSAMPLED)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_current(token)
