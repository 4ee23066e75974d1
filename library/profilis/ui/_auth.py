"""The dashboard's optional token check: one constant-time comparison per credential given.

A token may come as ``Authorization: Bearer <token>``, as ``X-Profilis-Token: <token>`` or
as ``?token=<token>`` (what a browser address bar can carry). ``_dashboard`` calls it for
every page and ``metrics.json`` request when a token is configured.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import parse_qs

from profilis.errors import ConfigError

__all__ = ["TokenCheck"]

#: Reads one request header by name (case-insensitively), None when absent.
HeaderGetter = Callable[[str], "str | None"]


class TokenCheck:
    """Accepts a request carrying ``token`` in any of the three places."""

    __slots__ = ("_expected",)

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ConfigError("ui_auth_token", "a non-empty string, or None for no token", token)
        # Bytes: compare_digest refuses non-ASCII str, and a token may hold any character.
        self._expected = token.encode("utf-8")

    def allows(self, header: HeaderGetter, query_string: str) -> bool:
        candidates = []
        authorization = header("Authorization")
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                candidates.append(credentials.strip())
        direct = header("X-Profilis-Token")
        if direct:
            candidates.append(direct.strip())
        if query_string:
            candidates.extend(parse_qs(query_string).get("token", ()))
        allowed = False
        for candidate in candidates:
            # Every candidate is compared (no early exit): timing tells nothing either way.
            # Looked up on the module at call time, so a test can watch the comparison.
            if hmac.compare_digest(candidate.encode("utf-8"), self._expected):
                allowed = True
        return allowed
