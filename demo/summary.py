"""What the demo shows: a snapshot of the sidecar's /metrics and status, and its summaries.

``Snapshot.read`` takes the sidecar's Prometheus text (requests per route, latency histograms,
``@profile``d function calls, DB queries, drops) and ``/_profilis/status.json`` (live workers
per service, queue depth); ``live_line`` is the one-line summary printed every few seconds
(p95 over the last interval), ``final_summary`` the table printed on exit (p95 since start)
that tests/demo reads.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Alerts", "Snapshot", "final_summary", "live_line"]

SERVICE = "shop"
_HTTP_HIST = "profilis_http_request_duration_seconds"
_DB_HIST = "profilis_db_query_duration_seconds"
_FN_HIST = "profilis_function_duration_seconds"


@dataclass(frozen=True)
class Alerts:
    firing: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    received: int = 0  # alerts Alertmanager holds
    available: bool = True
    delivered: tuple[str, ...] = ()  # their names (one per alert)


Buckets = dict[float, float]  # upper bound -> cumulative count


@dataclass
class Snapshot:
    requests: Counter[tuple[str, str, str]] = field(
        default_factory=Counter
    )  # method, route, status
    http_buckets: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    functions: Counter[str] = field(default_factory=Counter)  # calls by function
    fn_buckets: dict[str, Buckets] = field(default_factory=dict)
    db_queries: Counter[str] = field(default_factory=Counter)  # by db_vendor
    db_buckets: Buckets = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    workers: Counter[str] = field(default_factory=Counter)  # live workers by service
    queue_depth: int = 0
    queue_capacity: int = 0

    @classmethod
    def read(cls, metrics_url: str) -> Snapshot:
        """``metrics_url`` is the sidecar's base URL, e.g. http://127.0.0.1:9464."""
        with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=3) as response:
            text = response.read().decode()
        with urllib.request.urlopen(f"{metrics_url}/_profilis/status.json", timeout=3) as response:
            status = json.load(response)
        snapshot = cls()
        snapshot._add_metrics(text)
        snapshot._add_status(status)
        return snapshot

    def _add_metrics(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels, value = sample.labels, sample.value
                if sample.name == "profilis_http_requests_total":
                    key = (labels["method"], labels["route"], labels["status"])
                    self.requests[key] += int(value)
                elif sample.name == f"{_HTTP_HIST}_bucket":
                    per_route = self.http_buckets.setdefault(
                        (labels["method"], labels["route"]), {}
                    )
                    le = float(labels["le"])
                    per_route[le] = per_route.get(le, 0.0) + value
                elif sample.name == "profilis_function_calls_total":
                    self.functions[labels["function"]] += int(value)
                elif sample.name == f"{_FN_HIST}_bucket":
                    per_function = self.fn_buckets.setdefault(labels["function"], {})
                    le = float(labels["le"])
                    per_function[le] = per_function.get(le, 0.0) + value
                elif sample.name == "profilis_db_queries_total":
                    self.db_queries[labels["db_vendor"]] += int(value)
                elif sample.name == f"{_DB_HIST}_bucket":
                    le = float(labels["le"])
                    self.db_buckets[le] = self.db_buckets.get(le, 0.0) + value
                elif sample.name == "profilis_events_dropped_total":
                    self.dropped[labels["reason"]] += int(value)

    def _add_status(self, status: Mapping[str, Any]) -> None:
        for worker in status.get("workers", []):
            self.workers[str(worker.get("service"))] += 1
            self.queue_depth += int(worker.get("queue_depth") or 0)
            self.queue_capacity += int(worker.get("queue_capacity") or 0)

    def total_requests(self) -> int:
        return sum(self.requests.values())

    def errors(self) -> int:
        return sum(n for (_, _, status), n in self.requests.items() if status.startswith("5"))

    def routes(self) -> dict[tuple[str, str], int]:
        counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        for (method, route, _), n in self.requests.items():
            counts[(method, route)] += n
        return dict(counts)

    def all_http_buckets(self) -> Buckets:
        return _sum_buckets(self.http_buckets.values())


def _sum_buckets(many: Iterable[Buckets]) -> Buckets:
    total: Buckets = {}
    for buckets in many:
        for le, count in buckets.items():
            total[le] = total.get(le, 0.0) + count
    return total


def _minus(now: Buckets, before: Buckets) -> Buckets:
    return {le: count - before.get(le, 0.0) for le, count in now.items()}


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets (seconds), None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # as Prometheus: the highest finite bound
            width = count - lower_count
            return lower_bound + (le - lower_bound) * ((rank - lower_count) / width if width else 1)
        lower_bound, lower_count = le, count
    return lower_bound


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _alerts_text(alerts: Alerts) -> str:
    if not alerts.available:
        return "n/a (no Prometheus)"
    firing = ",".join(alerts.firing) or "none"
    text = f"firing {firing}"
    if alerts.pending:
        text += f"; pending {','.join(alerts.pending)}"
    return text


def live_line(now: Snapshot, before: Snapshot, elapsed_s: float, alerts: Alerts) -> str:
    """One line: request rate and p95 since ``before``, queue, drops, workers, alerts."""
    window = _minus(now.all_http_buckets(), before.all_http_buckets())
    drops = sum(now.dropped.values())
    return (
        f"[{elapsed_s:5.0f} s] requests {now.total_requests():6d} "
        f"(5xx {now.errors()})  p95 {_ms(quantile(0.95, window)):>7}  "
        f"db {sum(now.db_queries.values()):6d}  queue {now.queue_depth}/{now.queue_capacity}  "
        f"drops {drops}  workers {now.workers[SERVICE]}  alerts: {_alerts_text(alerts)}"
    )


def final_summary(snapshot: Snapshot, duration_s: float, alerts: Alerts) -> str:
    """The table printed when the demo ends (and parsed by tests/demo/test_demo.py)."""
    lines = [
        f"== Profilis demo: final summary after {duration_s:.0f} s ==",
        f"requests     {snapshot.total_requests()} "
        f"(5xx {snapshot.errors()}), p95 {_ms(quantile(0.95, snapshot.all_http_buckets()))}",
    ]
    for (method, route), count in sorted(snapshot.routes().items(), key=lambda kv: kv[0][1]):
        p95 = quantile(0.95, snapshot.http_buckets.get((method, route), {}))
        lines.append(f"  route  {method:<6} {route:<28} {count:>7}   p95 {_ms(p95)}")
    lines.append(f"functions    {sum(snapshot.functions.values())} calls (@profile)")
    for name, count in sorted(snapshot.functions.items()):
        p95 = quantile(0.95, snapshot.fn_buckets.get(name, {}))
        lines.append(f"  fn     {name:<35} {count:>7}   p95 {_ms(p95)}")
    vendors = ", ".join(f"{v} {n}" for v, n in sorted(snapshot.db_queries.items())) or "none"
    lines += [
        f"db queries   {sum(snapshot.db_queries.values())} ({vendors}), "
        f"p95 {_ms(quantile(0.95, snapshot.db_buckets))}",
        "workers      "
        + (", ".join(f"{n} ({s})" for s, n in sorted(snapshot.workers.items())) or "0"),
        f"queue depth  {snapshot.queue_depth} of {snapshot.queue_capacity}",
        "drops        "
        + ", ".join(f"{r} {snapshot.dropped[r]}" for r in ("queue", "transport", "decode")),
        f"alerts       {_alerts_text(alerts)}"
        + (f"; {alerts.received} in Alertmanager" if alerts.available else ""),
    ]
    return "\n".join(lines)
