"""Turns a copy of ``StatsStore``'s window into the ``metrics.json`` document.

``StatsStore.snapshot`` copies its slots under its lock and hands them here: merging time
slots, percentiles and formatting run without the lock. The document's shape is described
in docs/ui.md and carries ``schema_version``; a test checks the two agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

from profilis.core._histogram import HIGHEST_NS, LOWEST_NS, RELATIVE_ERROR, Histogram, percentiles
from profilis.core.async_collector import CollectorHealth

__all__ = [
    "OVERFLOW",
    "SCHEMA_VERSION",
    "ErrorRecord",
    "RouteHistogram",
    "WindowCopy",
    "build_report",
    "health_document",
]

#: Version of the document's shape; bumped when a field changes meaning or goes away.
SCHEMA_VERSION: Final = "1"
#: The name of the row that counts keys past a cap (``<other>``, method ``*``).
OVERFLOW: Final = "<other>"
_QUANTILES: Final = (0.5, 0.95, 0.99)
_STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")

K = TypeVar("K", bound=Hashable)
H = TypeVar("H", bound=Histogram)


class RouteHistogram(Histogram):
    """A route's histogram plus its responses by status class (1xx..5xx)."""

    __slots__ = ("statuses",)

    def __init__(self) -> None:
        super().__init__()
        self.statuses = [0, 0, 0, 0, 0]

    def merge_into(self, total: Histogram) -> None:
        super().merge_into(total)
        if isinstance(total, RouteHistogram):
            total.statuses = [a + b for a, b in zip(total.statuses, self.statuses, strict=True)]

    def copy(self) -> RouteHistogram:
        twin = RouteHistogram()
        self.merge_into(twin)
        return twin


class ErrorRecord(NamedTuple):
    """One failed operation, as kept in the recent-errors list."""

    end_ns: int
    kind: str
    name: str
    error: str
    dur_ns: int
    status: int | None
    trace_id: str | None


@dataclass
class WindowCopy:
    """What ``snapshot`` copies out of the store: one table per slot, per kind."""

    routes: list[dict[tuple[str, str], RouteHistogram]]
    functions: list[dict[str, Histogram]]
    vendors: list[dict[str, Histogram]]
    queries: list[dict[tuple[str, str], Histogram]]
    error_types: list[dict[str, int]]
    points: list[tuple[int, Histogram]]
    recent_errors: list[ErrorRecord]
    counters: dict[str, int]
    overflowed: dict[str, int]


def build_report(
    window: WindowCopy,
    *,
    now_ns: int,
    window_start_ns: int,
    window_seconds: float,
    bucket_seconds: float,
    series_seconds: float,
    series_points: int,
    limits: Mapping[str, int],
    health: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``metrics.json`` document (see docs/ui.md)."""
    # Rates are per second of the window actually covered (a fresh store covers little).
    covered_s = max(1.0, (now_ns - window_start_ns) / 1e9)
    routes = _merge(window.routes)
    functions = _merge(window.functions)
    vendors = _merge(window.vendors)
    queries = _merge(window.queries)
    error_types: dict[str, int] = {}
    for table in window.error_types:
        for name, count in table.items():
            error_types[name] = error_types.get(name, 0) + count
    route_rows = [
        {
            "method": method,
            "route": route,
            **_stats(h, covered_s),
            "statuses": dict(zip(_STATUS_CLASSES, h.statuses, strict=True)),
            "overflow": route == OVERFLOW and method == "*",
        }
        for (method, route), h in routes.items()
    ]
    route_rows.sort(key=lambda row: (-row["count"], row["route"], row["method"]))
    function_rows = [
        {"fn": fn, **_stats(h, covered_s), "overflow": fn == OVERFLOW}
        for fn, h in functions.items()
    ]
    function_rows.sort(key=lambda row: (-row["total_ms"], row["fn"]))
    vendor_rows = [
        {"db_vendor": vendor, **_stats(h, covered_s), "overflow": vendor == OVERFLOW}
        for vendor, h in vendors.items()
    ]
    vendor_rows.sort(key=lambda row: (-row["count"], row["db_vendor"]))
    query_rows = [
        {
            "db_vendor": vendor,
            "query": query,
            **_stats(h, covered_s),
            "overflow": query == OVERFLOW and vendor == "*",
        }
        for (vendor, query), h in queries.items()
    ]
    query_rows.sort(key=lambda row: (-row["total_ms"], row["query"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": now_ns / 1e9,
        "window": {
            "seconds": window_seconds,
            "covered_seconds": round(covered_s, 3),
            "bucket_seconds": bucket_seconds,
            "series_seconds": series_seconds,
            "start": window_start_ns / 1e9,
            "end": now_ns / 1e9,
        },
        "histogram": {
            "relative_error": round(RELATIVE_ERROR, 4),
            "lowest_ms": LOWEST_NS / 1e6,
            "highest_ms": HIGHEST_NS / 1e6,
        },
        "totals": {
            "http": _stats(_total(routes.values()), covered_s),
            "functions": _stats(_total(functions.values()), covered_s),
            "db": _stats(_total(vendors.values()), covered_s),
        },
        "series": _series(window.points, now_ns, window_start_ns, series_seconds, series_points),
        "routes": route_rows,
        "functions": function_rows,
        "db": {"vendors": vendor_rows, "queries": query_rows},
        "errors": {
            "by_type": [
                {"error": name, "count": count}
                for name, count in sorted(error_types.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "recent": [_error_row(record) for record in reversed(window.recent_errors)],
        },
        "collector": health,
        "store": {**window.counters, "overflowed": window.overflowed, "limits": dict(limits)},
    }


def health_document(health: CollectorHealth | Mapping[str, object]) -> dict[str, Any]:
    """Collector health as JSON: ``CollectorHealth`` field by field, or a mapping as given."""
    if isinstance(health, CollectorHealth):
        document = dataclasses.asdict(health)
        document["dropped"] = dict(health.dropped)
        document["sinks"] = [dataclasses.asdict(sink) for sink in health.sinks]
        document["dropped_total"] = health.dropped_total
        return document
    return dict(health)


def _merge(tables: Iterable[Mapping[K, H]]) -> dict[K, H]:
    merged: dict[K, H] = {}
    for table in tables:
        for key, histogram in table.items():
            total = merged.get(key)
            if total is None:
                merged[key] = histogram  # already a private copy: no need to copy again
            else:
                histogram.merge_into(total)
    return merged


def _total(histograms: Iterable[Histogram]) -> Histogram:
    total = Histogram()
    for histogram in histograms:
        histogram.merge_into(total)
    return total


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _stats(h: Histogram, covered_s: float) -> dict[str, Any]:
    p50, p95, p99 = percentiles(h, _QUANTILES)
    count = h.count
    return {
        "count": count,
        "errors": h.errors,
        "error_rate": round(h.errors / count, 4) if count else 0.0,
        "rate_per_s": round(count / covered_s, 3),
        "total_ms": _ms(h.sum_ns) or 0.0,
        "mean_ms": _ms(h.sum_ns / count) if count else None,
        "max_ms": _ms(h.max_ns) if count else None,
        "p50_ms": _ms(p50),
        "p95_ms": _ms(p95),
        "p99_ms": _ms(p99),
    }


def _series(
    points: list[tuple[int, Histogram]], now_ns: int, start_ns: int, step_s: float, count: int
) -> dict[str, Any]:
    """One point per ``step_s`` from the window's start (at most ``count``) to now; empty
    steps are zeros, so the chart's time axis has no holes."""
    step_ns = round(step_s * 1e9)
    by_epoch = dict(points)
    last = now_ns // step_ns
    first = max(start_ns // step_ns, last - count + 1)
    rows = []
    for epoch in range(first, last + 1):
        h = by_epoch.get(epoch) or Histogram()
        # The current step is still filling: its rate is over the part that has passed.
        elapsed_s = step_s if epoch < last else max(1.0, (now_ns - epoch * step_ns) / 1e9)
        p50, p95, p99 = percentiles(h, _QUANTILES)
        rows.append(
            {
                "t": epoch * step_ns / 1e9,
                "requests": h.count,
                "errors": h.errors,
                "rate_per_s": round(h.count / elapsed_s, 3),
                "p50_ms": _ms(p50),
                "p95_ms": _ms(p95),
                "p99_ms": _ms(p99),
            }
        )
    return {"step_seconds": step_s, "points": rows}


def _error_row(record: ErrorRecord) -> dict[str, Any]:
    return {
        "ts": record.end_ns / 1e9,
        "kind": record.kind,
        "name": record.name,
        "error": record.error,
        "dur_ms": _ms(record.dur_ns),
        "status": record.status,
        "trace_id": record.trace_id,
    }
