"""EventMetrics: HTTP, FN and DB events folded into the request metrics of DESIGN.md.

Shared by the in-process ``PrometheusExporter`` and the sidecar, which feeds it every worker's
events. Per event it does a dict lookup and a few integer adds (one lock per batch); it is
itself a prometheus_client collector, so the metric families are built from those numbers at
scrape time and exposed by prometheus_client. Events may come from untrusted senders: each
field the metrics use is checked, and a bad event is skipped and counted, never raised.
Label values are capped per label (count and length) and series per metric; the excess
collapses to ``__overflow__`` and is counted in ``profilis_label_overflow_total{label}``. A
budget bounds the series of the whole exposition (as Prometheus counts them: each bucket,
``_sum`` and ``_count`` is one), so a scrape's size and time stay bounded whatever arrives;
past it, new label sets go to one all-``__overflow__`` series per metric, counted in
``profilis_series_overflow_total``.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from profilis._validation import check_int

__all__ = [
    "DEFAULT_BUCKETS_S",
    "DEFAULT_MAX_LABEL_LENGTH",
    "DEFAULT_SERIES_BUDGET",
    "OVERFLOW",
    "EventMetrics",
]

#: Histogram bounds in seconds (DESIGN.md), the same for every duration metric.
DEFAULT_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
#: The label value that stands for every value past a cap.
OVERFLOW: Final = "__overflow__"
#: Longest label value exposed; longer ones collapse to ``OVERFLOW`` (never cut: two routes
#: must never merge into one label). Prometheus' ``labelValueLengthLimit`` must be at least this.
DEFAULT_MAX_LABEL_LENGTH: Final = 256
#: Series of the request metrics in one exposition, as Prometheus counts them. At the label
#: length cap it is about 12 MB of text; Prometheus' ``sampleLimit`` must leave room for it.
DEFAULT_SERIES_BUDGET: Final = 20_000

_INT64_MAX: Final = 2**63 - 1
# Field limits, as in profilis.schema: longer values are refused, never cut (two routes
# must never merge into one label).
_NAME_MAX: Final = 1024
_METHOD_MAX: Final = 32
_VENDOR_MAX: Final = 64
_UNKNOWN_METHOD: Final = "_OTHER"  # v1 REQ events carried no method (OpenTelemetry's value)
_UNKNOWN_VENDOR: Final = "unknown"

# A histogram is a list: [sum of durations in ns, count per bucket..., count above the last].
_Hist = list[int]
_Labels = TypeVar("_Labels", bound=tuple[str, ...])


class _HttpSeries:
    """One (service, route, method, status) counter and the (route, method) histogram."""

    __slots__ = ("count", "hist")

    def __init__(self, hist: _Hist) -> None:
        self.count = 0
        self.hist = hist


class _LabelLimiter:
    """Admits at most ``cap`` distinct values per label name, each at most ``max_length``
    characters long; counts what it turns away."""

    __slots__ = ("_cap", "_max_length", "_seen", "overflows")

    def __init__(self, cap: int, max_length: int) -> None:
        self._cap = cap
        self._max_length = max_length
        self._seen: dict[str, set[str]] = {}
        self.overflows: dict[str, int] = {}

    def admit(self, label: str, value: str) -> str:
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) < self._cap and len(value) <= self._max_length:
            seen.add(value)
            return value
        self.count(label)
        return OVERFLOW

    def count(self, label: str) -> None:
        self.overflows[label] = self.overflows.get(label, 0) + 1


class _ServiceCache:
    """Raw field values -> series for one service: the per-event fast path.

    Only values that were checked and admitted are keys, so a hit needs no further check,
    and values that overflowed are never keys, so a flood of them costs time, not memory.
    """

    __slots__ = ("db", "fn", "http", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.http: dict[tuple[object, object, int], _HttpSeries] = {}
        self.fn: dict[object, _Hist] = {}
        self.db: dict[object, _Hist] = {}


class EventMetrics(Collector):
    """Request, function and database metrics from events; a prometheus_client collector.

    ``observe(events, service)`` may run on one thread while ``collect`` runs on another.
    ``worker_label`` adds ``worker=<pid>`` to every series (the in-process exporter, one
    registry per process); ``invalid_events_metric`` names a counter of skipped events, or
    ``None`` when the caller counts them itself (the sidecar, as decode drops).
    ``max_label_length`` caps each label value's length and ``series_budget`` the series of
    the whole exposition (plus at most one overflow series per metric).
    """

    def __init__(
        self,
        *,
        max_label_values: int = 1000,
        max_series: int = 10_000,
        max_label_length: int = DEFAULT_MAX_LABEL_LENGTH,
        series_budget: int = DEFAULT_SERIES_BUDGET,
        worker_label: bool = False,
        buckets_s: Sequence[float] = DEFAULT_BUCKETS_S,
        invalid_events_metric: str | None = "profilis_exporter_invalid_events",
    ) -> None:
        check_int("max_label_values", max_label_values, minimum=1, maximum=1_000_000)
        self._max_series = check_int("max_series", max_series, minimum=1, maximum=10_000_000)
        check_int("max_label_length", max_label_length, minimum=16, maximum=_NAME_MAX)
        self._budget = check_int("series_budget", series_budget, minimum=100, maximum=10_000_000)
        bounds = [float(b) for b in buckets_s]
        if not bounds or bounds != sorted(set(bounds)) or bounds[0] <= 0:
            raise ValueError("buckets_s must be increasing positive numbers of seconds")
        # Compared with dur_ns as integers: no float division per event.
        self._bounds_ns = [round(b * 1e9) for b in bounds]
        # repr gives what prometheus_client writes for these bounds ("0.005", "1.0").
        self._le = [repr(b) for b in bounds] + ["+Inf"]
        # Exposed series per label set: a histogram's buckets, _sum and _count; the function
        # and database tables also expose a calls counter per label set.
        self._hist_series = len(bounds) + 3
        self._worker_label = worker_label
        self._invalid_metric = invalid_events_metric
        self._lock = threading.Lock()
        self._limiter = _LabelLimiter(max_label_values, max_label_length)
        self._series = 0  # exposed series so far, the overflow series included
        self._budget_overflows = 0
        self._caches: dict[str, _ServiceCache] = {}
        # Label values -> series: what collect() exposes.
        self._http_requests: dict[tuple[str, str, str, str], _HttpSeries] = {}
        self._http_hist: dict[tuple[str, str, str], _Hist] = {}
        self._fn_hist: dict[tuple[str, str], _Hist] = {}
        self._db_hist: dict[tuple[str, str], _Hist] = {}
        self._invalid = 0

    @property
    def invalid_events(self) -> int:
        return self._invalid

    @property
    def label_overflows(self) -> dict[str, int]:
        with self._lock:
            return dict(self._limiter.overflows)

    # ------------------------------------------------------------------ writer side
    def observe(self, events: Iterable[object], service: str) -> int:
        """Count ``events`` under ``service``; return how many were skipped as invalid."""
        bounds = self._bounds_ns
        invalid = 0
        with self._lock:
            cache = self._caches.get(service) or self._cache_for(service)
            http_get, fn_get, db_get = cache.http.get, cache.fn.get, cache.db.get
            for event in events:
                try:
                    if type(event) is not dict:
                        invalid += 1
                        continue
                    dur = event.get("dur_ns")
                    if type(dur) is not int or not 0 <= dur <= _INT64_MAX:
                        invalid += 1
                        continue
                    kind = event.get("kind")
                    hist: _Hist | None
                    if kind == "HTTP":
                        status = event.get("status")
                        # Exact int: 200.0 would otherwise find the series of 200.
                        if type(status) is not int:
                            invalid += 1
                            continue
                        key = (event.get("route"), event.get("method"), status)
                        series = http_get(key) or self._new_http(cache, key, cache_it=True)
                        if series is None:
                            invalid += 1
                            continue
                        series.count += 1
                        hist = series.hist
                    elif kind == "FN":
                        name = event.get("fn")
                        hist = fn_get(name) or self._new_fn(cache, name)
                    elif kind == "DB":
                        vendor = event.get("db_vendor")
                        hist = db_get(vendor) or self._new_db(cache, vendor)
                    elif kind == "REQ":
                        hist = self._v1_request(cache, event)  # rare: the uncached path
                    else:
                        hist = None
                    if hist is None:
                        invalid += 1
                        continue
                    hist[0] += dur
                    hist[bisect_left(bounds, dur) + 1] += 1
                except TypeError:  # an unhashable value (a list as route, say)
                    invalid += 1
            self._invalid += invalid
        return invalid

    def _cache_for(self, service: str) -> _ServiceCache:
        valid = type(service) is str and 0 < len(service) <= 255
        label = self._limiter.admit("service", service) if valid else OVERFLOW
        cache = _ServiceCache(label)
        if label != OVERFLOW:
            self._caches[service] = cache
        return cache

    def _new_http(
        self, cache: _ServiceCache, key: tuple[object, object, int], *, cache_it: bool
    ) -> _HttpSeries | None:
        route, method, status = key
        if not (type(route) is str and len(route) <= _NAME_MAX):
            return None
        if not (type(method) is str and 0 < len(method) <= _METHOD_MAX):
            return None
        if not 100 <= status <= 599:
            return None
        admit = self._limiter.admit
        labels = (cache.label, admit("route", route), admit("method", method))
        full = (*labels, admit("status", str(status)))
        series = self._http_requests.get(full)
        if series is None:
            if len(self._http_requests) >= self._max_series:
                self._limiter.count("series")
                labels = (cache.label, OVERFLOW, OVERFLOW)
                full = (cache.label, OVERFLOW, OVERFLOW, OVERFLOW)
                series = self._http_requests.get(full)
            if series is None:
                cost = 1 if labels in self._http_hist else 1 + self._hist_series
                if not self._affordable(cost):
                    labels, full = (OVERFLOW,) * 3, (OVERFLOW,) * 4
                    series = self._http_requests.get(full)
            if series is None:
                self._series += 1
                series = self._http_requests[full] = _HttpSeries(
                    self._hist(self._http_hist, labels, self._hist_series)
                )
        if cache_it and OVERFLOW not in full:
            cache.http[key] = series
        return series

    def _v1_request(self, cache: _ServiceCache, event: dict[str, object]) -> _Hist | None:
        status = event.get("status")
        if type(status) is not int:
            return None
        key = (event.get("route"), event.get("method", _UNKNOWN_METHOD), status)
        series = self._new_http(cache, key, cache_it=False)
        if series is None:
            return None
        series.count += 1
        return series.hist

    def _new_fn(self, cache: _ServiceCache, name: object) -> _Hist | None:
        if not (type(name) is str and len(name) <= _NAME_MAX):
            return None
        return self._new_named(self._fn_hist, cache, cache.fn, "function", name, name)

    def _new_db(self, cache: _ServiceCache, vendor: object) -> _Hist | None:
        if vendor is None:
            value = _UNKNOWN_VENDOR
        elif type(vendor) is str and 0 < len(vendor) <= _VENDOR_MAX:
            value = vendor
        else:
            return None
        return self._new_named(self._db_hist, cache, cache.db, "db_vendor", vendor, value)

    def _new_named(
        self,
        table: dict[tuple[str, str], _Hist],
        cache: _ServiceCache,
        raw_cache: dict[object, _Hist],
        label: str,
        raw: object,
        value: str,
    ) -> _Hist:
        labels = (cache.label, self._limiter.admit(label, value))
        cost = self._hist_series + 1  # the histogram and the calls counter
        if labels not in table and len(table) >= self._max_series:
            self._limiter.count("series")
            labels = (cache.label, OVERFLOW)
        if labels not in table and not self._affordable(cost):
            labels = (OVERFLOW, OVERFLOW)
        hist = self._hist(table, labels, cost)
        if OVERFLOW not in labels:
            raw_cache[raw] = hist
        return hist

    def _hist(self, table: dict[_Labels, _Hist], labels: _Labels, cost: int) -> _Hist:
        hist = table.get(labels)
        if hist is None:
            hist = table[labels] = [0] * (len(self._bounds_ns) + 2)
            self._series += cost
        return hist

    def _affordable(self, cost: int) -> bool:
        """Whether a new label set of ``cost`` series fits the budget; counts it if not.

        Called per event that needs a new label set, so the count is of events, like the
        label overflows; the all-overflow series themselves are outside the budget.
        """
        if self._series + cost <= self._budget:
            return True
        self._budget_overflows += 1
        return False

    # ------------------------------------------------------------------ scrape side
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = [(labels, s.count) for labels, s in self._http_requests.items()]
            http = [(labels, list(h)) for labels, h in self._http_hist.items()]
            fn = [(labels, list(h)) for labels, h in self._fn_hist.items()]
            db = [(labels, list(h)) for labels, h in self._db_hist.items()]
            overflows = sorted(self._limiter.overflows.items())
            invalid = self._invalid
            series, budget_overflows = self._series, self._budget_overflows
        # The pid at scrape time, so a forked child labels its series with its own.
        worker = [str(os.getpid())] if self._worker_label else []
        extra_names = ["worker"] if self._worker_label else []

        requests_total = CounterMetricFamily(
            "profilis_http_requests",
            "HTTP requests served, by route template, method and status.",
            labels=["service", "route", "method", "status", *extra_names],
        )
        for labels, count in requests:
            requests_total.add_metric([*labels, *worker], count)
        yield requests_total
        yield self._histogram(
            "profilis_http_request_duration_seconds",
            "HTTP request duration in seconds.",
            ["service", "route", "method", *extra_names],
            http,
            worker,
        )
        yield self._counter_of(
            "profilis_function_calls",
            "Calls of profiled functions.",
            ["service", "function", *extra_names],
            fn,
            worker,
        )
        yield self._histogram(
            "profilis_function_duration_seconds",
            "Profiled function duration in seconds.",
            ["service", "function", *extra_names],
            fn,
            worker,
        )
        yield self._counter_of(
            "profilis_db_queries",
            "Database statements executed.",
            ["service", "db_vendor", *extra_names],
            db,
            worker,
        )
        yield self._histogram(
            "profilis_db_query_duration_seconds",
            "Database statement duration in seconds.",
            ["service", "db_vendor", *extra_names],
            db,
            worker,
        )
        overflow = CounterMetricFamily(
            "profilis_label_overflow",
            f"Events whose label value was replaced by {OVERFLOW} because the label (or, for "
            "label=series, the metric) reached its cap, or the value its length cap; "
            "label=service counts batches.",
            labels=["label"],
        )
        for label, count in overflows:
            overflow.add_metric([label], count)
        yield overflow
        yield CounterMetricFamily(
            "profilis_series_overflow",
            f"Events counted in the all-{OVERFLOW} series because the exposition's series "
            "budget was spent.",
            value=budget_overflows,
        )
        yield GaugeMetricFamily(
            "profilis_series",
            "Series of the request metrics, as Prometheus counts them (each bucket is one).",
            value=series,
        )
        if self._invalid_metric is not None:
            yield CounterMetricFamily(
                self._invalid_metric, "Events skipped because a field was invalid.", value=invalid
            )

    @staticmethod
    def _counter_of(
        name: str,
        doc: str,
        label_names: list[str],
        rows: Sequence[tuple[tuple[str, ...], _Hist]],
        worker: list[str],
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=label_names)
        for labels, hist in rows:
            family.add_metric([*labels, *worker], sum(hist[1:]))
        return family

    def _histogram(
        self,
        name: str,
        doc: str,
        label_names: list[str],
        rows: Sequence[tuple[tuple[str, ...], _Hist]],
        worker: list[str],
    ) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=label_names)
        for labels, hist in rows:
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(self._le, hist[1:], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric([*labels, *worker], buckets, hist[0] / 1e9)
        return family
