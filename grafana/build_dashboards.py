"""Writes the Grafana dashboards in grafana/dashboards/*.json from the specs below.

The JSON files are what Grafana provisions (grafana/provisioning/dashboards/profilis.yaml)
and what tests/grafana/ checks: structure (grafana-foundation-sdk round-trip), titles, units
and descriptions, and every query against a live Prometheus fed by a real sidecar. Edit this
file (building blocks in dashgen.py), then run `python grafana/build_dashboards.py`;
`--check` exits 1 when the JSON files are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dashgen import (
    ERROR_RATIO_WARNING,
    HTTP,
    JSON,
    LATENCY_P95_WARNING_S,
    QUEUE_CRITICAL_RATIO,
    QUEUE_WARNING_RATIO,
    SIDECAR,
    SVC,
    Dashboard,
    Panel,
    Query,
    Variable,
    error_ratio,
    mean,
    quantile,
    rate,
    render,
    stat,
    table,
)

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

REQ = "profilis_http_requests_total"
LAT = "profilis_http_request_duration_seconds"
DB_Q = "profilis_db_queries_total"
DB_LAT = "profilis_db_query_duration_seconds"
FN_C = "profilis_function_calls_total"
FN_LAT = "profilis_function_duration_seconds"


def service_variables(metric: str) -> tuple[Variable, ...]:
    return (
        Variable(
            "namespace",
            "Namespace",
            f"label_values({metric}, namespace)",
            "Kubernetes namespace (a target label added by Prometheus).",
        ),
        Variable(
            "service",
            "Service",
            f'label_values({metric}{{namespace=~"$namespace"}}, service)',
            "Service name the sidecar reports (PROFILIS_SERVICE_NAME).",
        ),
    )


OVERVIEW = Dashboard(
    uid="profilis-overview",
    title="Profilis / Overview",
    description="HTTP traffic, errors and latency of services instrumented by Profilis.",
    variables=(
        *service_variables(REQ),
        Variable(
            "route",
            "Route",
            f"label_values({REQ}{{{SVC}}}, route)",
            "Route template (never the raw path).",
        ),
    ),
    panels=(
        stat("Request rate", "Requests per second, all selected routes.", "reqps", rate(REQ, HTTP)),
        stat(
            "Error ratio (5xx)",
            "Share of requests answered with a 5xx status.",
            "percentunit",
            error_ratio(HTTP),
            thresholds=(ERROR_RATIO_WARNING,),
        ),
        stat(
            "p95 latency",
            "95th percentile request duration, all selected routes.",
            "s",
            quantile(0.95, LAT, HTTP),
            thresholds=(LATENCY_P95_WARNING_S,),
        ),
        stat(
            "p99 latency",
            "99th percentile request duration, all selected routes.",
            "s",
            quantile(0.99, LAT, HTTP),
        ),
        Panel(
            "Request rate by route",
            "Requests per second per route template.",
            "reqps",
            (Query(rate(REQ, HTTP, "route"), "{{route}}"),),
        ),
        Panel(
            "Requests by status",
            "Requests per second per HTTP status code.",
            "reqps",
            (Query(rate(REQ, HTTP, "status"), "{{status}}"),),
        ),
        Panel(
            "Error ratio by route (5xx)",
            "Share of each route's requests that end in 5xx.",
            "percentunit",
            (Query(error_ratio(HTTP, "route"), "{{route}}"),),
            thresholds=(ERROR_RATIO_WARNING,),
            width=24,
        ),
        *(
            Panel(
                f"p{q} latency by route",
                f"{q}th percentile request duration per route "
                "(interpolated within histogram buckets).",
                "s",
                (Query(quantile(q / 100, LAT, HTTP, "route"), "{{route}}"),),
                width=8,
                thresholds=(LATENCY_P95_WARNING_S,) if q == 95 else (),
            )
            for q in (50, 95, 99)
        ),
        table(
            "Top routes",
            "The busiest routes now: rate, 5xx ratio and p95 latency.",
            {
                "Requests/s": ("reqps", rate(REQ, HTTP, "route, method")),
                "Error ratio": ("percentunit", error_ratio(HTTP, "route, method")),
                "p95": ("s", quantile(0.95, LAT, HTTP, "route, method")),
            },
            sort="Requests/s",
        ),
    ),
)

DATABASE = Dashboard(
    uid="profilis-database",
    title="Profilis / Database",
    description="Database queries seen by Profilis, by vendor.",
    variables=service_variables(DB_Q),
    panels=(
        stat("Query rate", "Database queries per second.", "ops", rate(DB_Q, SVC)),
        stat(
            "p95 query latency", "95th percentile query duration.", "s", quantile(0.95, DB_LAT, SVC)
        ),
        stat(
            "Mean query latency",
            "Mean query duration.",
            "s",
            f"{rate(DB_LAT + '_sum', SVC)} / {rate(DB_LAT + '_count', SVC)}",
        ),
        stat(
            "Vendors",
            "Database vendors seen.",
            "short",
            f"count(count by (db_vendor) ({DB_Q}{{{SVC}}}))",
        ),
        Panel(
            "Query rate by vendor",
            "Queries per second per database vendor.",
            "ops",
            (Query(rate(DB_Q, SVC, "db_vendor"), "{{db_vendor}}"),),
        ),
        Panel(
            "Mean query latency by vendor",
            "Mean query duration per vendor.",
            "s",
            (Query(mean(DB_LAT, SVC, "db_vendor"), "{{db_vendor}}"),),
        ),
        Panel(
            "Query latency percentiles by vendor",
            "p50, p95 and p99 query duration per vendor.",
            "s",
            tuple(
                Query(quantile(q / 100, DB_LAT, SVC, "db_vendor"), f"p{q} {{{{db_vendor}}}}")
                for q in (50, 95, 99)
            ),
            width=24,
        ),
    ),
)

FUNCTIONS = Dashboard(
    uid="profilis-functions",
    title="Profilis / Functions",
    description="Calls and latency of functions profiled with @profile.",
    variables=service_variables(FN_C),
    panels=(
        stat("Call rate", "Profiled function calls per second.", "ops", rate(FN_C, SVC)),
        stat(
            "Functions",
            "Functions that reported calls.",
            "short",
            f"count(count by (function) ({FN_C}{{{SVC}}}))",
        ),
        stat(
            "p95 call latency",
            "95th percentile call duration, all functions.",
            "s",
            quantile(0.95, FN_LAT, SVC),
        ),
        stat(
            "Mean call latency",
            "Mean call duration, all functions.",
            "s",
            f"{rate(FN_LAT + '_sum', SVC)} / {rate(FN_LAT + '_count', SVC)}",
        ),
        Panel(
            "Calls by function (top 10)",
            "Calls per second of the 10 most called functions.",
            "ops",
            (Query(f"topk(10, {rate(FN_C, SVC, 'function')})", "{{function}}"),),
        ),
        Panel(
            "p95 latency by function (top 10)",
            "95th percentile duration of the 10 slowest functions.",
            "s",
            (Query(f"topk(10, {quantile(0.95, FN_LAT, SVC, 'function')})", "{{function}}"),),
        ),
        Panel(
            "Mean latency by function",
            "Mean call duration per function.",
            "s",
            (Query(mean(FN_LAT, SVC, "function"), "{{function}}"),),
            width=24,
        ),
        table(
            "Top functions",
            "The most called functions now: calls, p95 and mean latency.",
            {
                "Calls/s": ("ops", rate(FN_C, SVC, "function")),
                "p95": ("s", quantile(0.95, FN_LAT, SVC, "function")),
                "Mean": ("s", mean(FN_LAT, SVC, "function")),
            },
            sort="Calls/s",
        ),
    ),
)

WORKER = "namespace, pod, worker"
UP_DOWN: JSON = {
    "type": "value",
    "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}},
}
DASHED_CAPACITY: JSON = {
    "matcher": {"id": "byRegexp", "options": "^capacity .*"},
    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
}
COLLECTOR = Dashboard(
    uid="profilis-collector",
    title="Profilis / Collector health",
    description="The Profilis sidecars and their agents: queues, drops, export errors, workers.",
    variables=(
        Variable(
            "job",
            "Job",
            "label_values(profilis_sidecar_workers, job)",
            "Prometheus scrape job of the sidecars.",
            all_value=None,
        ),
        Variable(
            "namespace",
            "Namespace",
            'label_values(profilis_sidecar_workers{job=~"$job"}, namespace)',
            "Kubernetes namespace (a target label added by Prometheus).",
        ),
        Variable(
            "pod",
            "Pod",
            'label_values(profilis_sidecar_workers{job=~"$job", namespace=~"$namespace"}, pod)',
            "Pod of the sidecar (a target label added by Prometheus).",
        ),
    ),
    panels=(
        Panel(
            "Sidecar up",
            "Whether Prometheus can scrape each sidecar (alert: ProfilisSidecarDown).",
            "none",
            (Query(f"up{{{SIDECAR}}}", "{{pod}} {{instance}}"),),
            kind="stat",
            width=24,
            height=4,
            mappings=(UP_DOWN,),
        ),
        Panel(
            "Queue depth vs capacity",
            "Events waiting in each agent's queue (solid) against "
            "the queue's size (dashed), per pod and worker pid.",
            "short",
            (
                Query(
                    f"max by ({WORKER}) (profilis_queue_depth{{{SIDECAR}}})",
                    "depth {{pod}} {{worker}}",
                ),
                Query(
                    f"max by ({WORKER}) (profilis_queue_capacity{{{SIDECAR}}})",
                    "capacity {{pod}} {{worker}}",
                ),
            ),
            overrides=(DASHED_CAPACITY,),
        ),
        Panel(
            "Queue fill ratio",
            "Queue depth / capacity per pod and worker; the lines are the "
            "warning and critical alert thresholds.",
            "percentunit",
            (
                Query(
                    f"max by ({WORKER}) (profilis_queue_depth{{{SIDECAR}}}"
                    f" / profilis_queue_capacity{{{SIDECAR}}})",
                    "{{pod}} {{worker}}",
                ),
            ),
            thresholds=(QUEUE_WARNING_RATIO, QUEUE_CRITICAL_RATIO),
            max_value=1,
        ),
        Panel(
            "Events dropped by reason",
            "Events lost per second: queue (agent queue full), "
            "transport (agent could not send), decode (unreadable datagrams).",
            "cps",
            (Query(rate("profilis_events_dropped_total", SIDECAR, "reason"), "{{reason}}"),),
        ),
        Panel(
            "Events received and exported",
            "Events per second the sidecars received from "
            "agents and the events their agents exported.",
            "cps",
            (
                Query(rate("profilis_sidecar_events_received_total", SIDECAR), "received"),
                Query(rate("profilis_events_exported_total", SIDECAR), "exported"),
            ),
        ),
        Panel(
            "Export errors",
            "Failed exports per second by exporter (alert: ProfilisExportErrors).",
            "cps",
            (Query(rate("profilis_export_errors_total", SIDECAR, "exporter"), "{{exporter}}"),),
        ),
        Panel(
            "Live workers",
            "Agent processes reporting to each sidecar (alert: ProfilisNoWorkersReporting).",
            "short",
            (Query(f"sum by (namespace, pod) (profilis_sidecar_workers{{{SIDECAR}}})", "{{pod}}"),),
        ),
        Panel(
            "Lost batches",
            "Batches per second lost between agents and sidecar (gaps in their sequence numbers).",
            "cps",
            (
                Query(
                    rate("profilis_sidecar_batches_lost_total", SIDECAR, "namespace, pod"),
                    "{{pod}}",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, DATABASE, FUNCTIONS, COLLECTOR)


def main(argv: list[str]) -> int:
    stale: list[str] = []
    for d in DASHBOARDS:
        path = DASHBOARDS_DIR / f"{d.uid.removeprefix('profilis-')}.json"
        text = render(d)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python grafana/build_dashboards.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
