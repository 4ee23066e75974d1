"""Profilis 1.x's recent-errors list (``ErrorItem``, ``record_error``), on the 2.0 dashboard.

1.x kept one process-wide ring of ``ErrorItem``s that the app filled with ``record_error``
and its dashboard served as ``errors.json``. 2.0 takes failures from the events themselves
(``StatsStore`` lists them under ``errors.recent``); for 1.x code the ring is kept, still
served as ``errors.json`` by the 1.x-compatible blueprint and router, and its items are
shown among the dashboard's recent errors (``WithRecordedErrors``). Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from profilis._compat import warn_deprecated
from profilis.errors import ConfigError
from profilis.ui._auth import HeaderGetter, TokenCheck
from profilis.ui._dashboard import Dashboard, SnapshotSource, UiResponse, _finish

__all__ = [
    "ERRORS_PATH",
    "ErrorItem",
    "ErrorRing",
    "ErrorsDashboard",
    "WithRecordedErrors",
    "blueprint_settings",
    "dashboard_html",
    "deprecated_blueprint_names",
    "get_error_ring",
    "record_error",
]

#: Where the 1.x dashboard served the ring, under its mount point.
ERRORS_PATH: Final = "/errors.json"
#: As in 1.x: 500 items kept, the last 50 served.
_RING_SIZE: Final = 500
_SERVED: Final = 50


@dataclasses.dataclass
class ErrorItem:
    """One failed request, as 1.x's ``record_error`` took it."""

    ts_ns: int
    route: str
    status: int
    exception_type: str | None
    exception_value: str
    traceback: str


class ErrorRing:
    """The last ``maxlen`` recorded errors, each with the wall time it was recorded."""

    def __init__(self, maxlen: int = _RING_SIZE) -> None:
        self._items: deque[tuple[float, ErrorItem]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def record(self, item: ErrorItem) -> None:
        # 1.x's ts_ns was often a monotonic reading: the dashboard needs a wall time.
        with self._lock:
            self._items.append((time.time(), item))

    def dump(self) -> list[dict[str, Any]]:
        """The ``errors.json`` rows of 1.x: the newest 50 items, oldest first."""
        with self._lock:
            items = list(self._items)[-_SERVED:]
        return [dataclasses.asdict(item) for _, item in items]

    def recent_rows(self) -> list[dict[str, Any]]:
        """The newest 50 items as rows of the 2.0 ``errors.recent`` list, newest first."""
        with self._lock:
            items = list(self._items)[-_SERVED:]
        return [
            {
                "ts": recorded,
                "kind": "HTTP",
                "name": item.route,
                "error": item.exception_type or f"HTTP {item.status}",
                "dur_ms": None,
                "status": item.status,
                "trace_id": None,
            }
            for recorded, item in reversed(items)
        ]

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_RING: Final = ErrorRing()


def get_error_ring() -> ErrorRing:
    """The process-wide ring ``record_error`` fills."""
    return _RING


def record_error(item: ErrorItem) -> None:
    """Add ``item`` to the ring: shown by the dashboards of this process."""
    _RING.record(item)


class WithRecordedErrors:
    """``stats``' snapshot with the ring's items merged into ``errors.recent``.

    Wraps the store the dashboard serves; costs one length check while the ring is empty,
    which it stays unless 1.x code calls ``record_error``.
    """

    def __init__(self, stats: SnapshotSource, ring: ErrorRing = _RING) -> None:
        if not callable(getattr(stats, "snapshot", None)):
            raise TypeError("stats must be a StatsStore (or have a snapshot() method)")
        self.stats = stats
        self.ring = ring

    def snapshot(self) -> Mapping[str, Any]:
        document = self.stats.snapshot()
        if not len(self.ring):
            return document
        merged = dict(document)
        errors = dict(merged.get("errors") or {})
        recent = [*errors.get("recent", ()), *self.ring.recent_rows()]
        recent.sort(key=lambda row: -row["ts"])
        errors["recent"] = recent
        merged["errors"] = errors
        return merged


class ErrorsDashboard:
    """``Dashboard`` over ``WithRecordedErrors(stats)``, also answering 1.x's ``errors.json``
    (under the same token). The Flask blueprint and the 1.x FastAPI router serve this."""

    def __init__(self, stats: SnapshotSource, *, auth_token: str | None = None) -> None:
        self.dashboard = Dashboard(WithRecordedErrors(stats), auth_token=auth_token)
        self._check = None if auth_token is None else TokenCheck(auth_token)

    def respond(
        self,
        method: str,
        path: str,
        *,
        query_string: str = "",
        header: HeaderGetter = lambda name: None,
        base_path: str = "",
    ) -> UiResponse:
        if path != ERRORS_PATH:
            return self.dashboard.respond(
                method, path, query_string=query_string, header=header, base_path=base_path
            )
        if method not in ("GET", "HEAD"):
            return self.dashboard.respond(method, path)  # its 405
        if self._check is not None and not self._check.allows(header, query_string):
            return self.dashboard.respond(method, "/", query_string=query_string, header=header)
        body = json.dumps({"errors": _RING.dump()}, separators=(",", ":")).encode()
        return _finish(method, 200, "application/json", body)


class _NoData:
    def snapshot(self) -> Mapping[str, Any]:
        return {}


def dashboard_html() -> str:
    """The 2.0 dashboard page for a dashboard mounted at ``/`` (1.x's ``DASHBOARD_HTML``)."""
    response = Dashboard(_NoData()).respond("GET", "/")
    return response.body.decode()


def blueprint_settings(
    ui_prefix: object, ui_auth_token: str | None, bearer_token: str | None
) -> tuple[str, str | None]:
    """A dashboard blueprint's mount prefix (no trailing ``/``; ``""`` for the root) and its
    token, with 1.x's ``bearer_token=`` accepted (deprecated) for ``ui_auth_token=``."""
    if bearer_token is not None:
        warn_deprecated("make_ui_blueprint(bearer_token=)", "ui_auth_token=")
        if ui_auth_token is not None and ui_auth_token != bearer_token:
            raise TypeError("pass ui_auth_token= or bearer_token=, not both")
        ui_auth_token = bearer_token
    if not isinstance(ui_prefix, str) or (ui_prefix and not ui_prefix.startswith("/")):
        raise ConfigError("ui_prefix", "a path starting with '/', or '' for the root", ui_prefix)
    return ui_prefix.rstrip("/"), ui_auth_token


_RECENT: Final = "the error= of events: StatsStore lists failed requests under errors.recent"


def deprecated_blueprint_names(blueprint: str) -> dict[str, tuple[Any, str]]:
    """The 1.x names of a framework's ``ui`` module, for ``deprecated_getattr``."""
    return {
        "ErrorItem": (lambda: ErrorItem, _RECENT),
        "record_error": (lambda: record_error, _RECENT),
        "get_error_ring": (lambda: get_error_ring, _RECENT),
        "DASHBOARD_HTML": (dashboard_html, blueprint),
    }
