"""The dashboards and alerts against the real thing: Prometheus scrapes a real sidecar fed by
a gunicorn app (2 workers) and the load tool; every panel query answers, and a queue-depth
alert goes pending, fires and reaches a real Alertmanager when agents are backpressured.

Stage times are printed (pytest -s) and written to test-artifacts/grafana-live-timeline.json.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.grafana.artifacts import (
    REPO,
    RULES_FILE,
    load_dashboards,
    load_rules_document,
    panel_queries,
)
from tests.grafana.grafana_queries import dashboard_queries, resolve_variables
from tests.grafana.live_stack import (
    JOB,
    TARGET_LABELS,
    PrometheusAPI,
    alertmanager_alerts,
    running_alertmanager,
    running_prometheus,
    wait_until,
)
from tests.support.processes import free_port, run_process

pytestmark = [pytest.mark.live, pytest.mark.slow]

TIMELINE_FILE = REPO / "test-artifacts" / "grafana-live-timeline.json"
# Grafana's $__rate_interval is at least 4 scrape intervals; 5 s holds 4-5 samples at 1 s.
RATE_INTERVAL = "5s"
QUEUE_ALERTS = ("ProfilisQueueFilling", "ProfilisQueueSaturated")
SHORT_FOR = "2s"
APP_WORKERS = 2
STEADY_AGENTS = 2
STALLED_AGENTS = 2
PANEL_QUERIES = sum(len(list(panel_queries(d))) for d in load_dashboards().values())


@dataclass
class Timeline:
    """Seconds since the test started, per stage; written as JSON for the release note."""

    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    stages: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(
        default_factory=lambda: {"rate_interval": RATE_INTERVAL, "short_for": SHORT_FOR}
    )

    def mark(self, stage: str) -> None:
        self.stages[stage] = round(time.monotonic() - self.started, 2)
        print(f"[grafana-live] {self.stages[stage]:7.2f} s  {stage}", flush=True)

    def write(self) -> None:
        """Also after a failure: the stages reached tell where it stopped."""
        TIMELINE_FILE.parent.mkdir(exist_ok=True)
        document = {"started_at": self.started_at, "stages_s": self.stages, **self.extra}
        TIMELINE_FILE.write_text(json.dumps(document, indent=2) + "\n")


def short_for_rules(directory: Path) -> Path:
    """The real rules file with the queue alerts' `for` cut to seconds."""
    document = load_rules_document()
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in QUEUE_ALERTS:
                rule["for"] = SHORT_FOR
    path = directory / RULES_FILE.name
    path.write_text(yaml.safe_dump(document))
    return path


def loadgen(address: str, agents: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "profilis_sidecar.loadgen", "--address", address,
            "--agents", str(agents), "--timeout", "120", *options]  # fmt: skip


# Steady agents: every event kind (5xx included) at a rate the writers keep up with.
STEADY = ("--mix", "all", "--rate", "300", "--events", "40000", "--heartbeat-interval", "1")
# Stalled writers: the batch is larger than the queue and the flush interval longer than the
# test, so nothing leaves the queue; it fills at 1000 events/s and then drops (reason=queue).
# Heartbeats keep reporting the depth, as behind an exporter that hangs.
STALLED = ("--rate", "1000", "--events", "100000", "--queue-size", "1000",
           "--batch-max", "100000", "--flush-interval", "3600", "--heartbeat-interval", "0.5",
           "--close-timeout", "0", "--service", "batch-jobs")  # fmt: skip


@contextlib.contextmanager
def traffic(port: int) -> Iterator[dict[str, int]]:
    """Requests to the app from a background thread, ~50/s, until the block ends."""
    paths = ("/orders/1", "/orders/2", "/orders/404", "/checkout")
    sent = {"requests": 0}
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            while not stop.wait(0.02) and sent["requests"] < 10_000:
                with contextlib.suppress(httpx.HTTPError):  # the test reads the metrics
                    client.get(paths[sent["requests"] % len(paths)])
                sent["requests"] += 1

    thread = threading.Thread(target=run, name="grafana-live-traffic", daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(10)


def panel_problems(prom: PrometheusAPI) -> list[str]:
    """Every panel query of every dashboard, with "All" and with the first value of each
    variable; what comes back empty (or a variable without values)."""
    problems = []
    for name, dashboard in load_dashboards().items():
        for pick_all in (True, False):
            try:
                values = resolve_variables(dashboard, prom.label_values, pick_all=pick_all)
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
                continue
            for query in dashboard_queries(name, dashboard, values, RATE_INTERVAL):
                if not prom.query(query.expr):
                    problems.append(f"{name} / {query.panel} (all={pick_all}): {query.expr}")
    return problems


def wait_for_panels(prom: PrometheusAPI, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while problems := panel_problems(prom):
        if time.monotonic() > deadline:
            pytest.fail("panel queries still empty:\n" + "\n".join(problems))
        time.sleep(0.5)


# What the gunicorn app's own traffic must put into Prometheus (route templates, not paths).
APP_QUERIES = (
    'profilis_http_requests_total{service="shop", route="/orders/<int:order_id>", status="200"}',
    'profilis_http_requests_total{service="shop", route="/orders/<int:order_id>", status="404"}',
    'profilis_http_requests_total{service="shop", route="/checkout", status="500"}',
    'profilis_function_calls_total{service="shop", function="shop.load_order"}',
    'profilis_db_queries_total{service="shop", db_vendor="sqlite"}',
)


def app_visible(prom: PrometheusAPI) -> bool:
    return all(prom.query(expr) for expr in APP_QUERIES)


def alert_state(prom: PrometheusAPI, name: str) -> str | None:
    states = {a["state"] for a in prom.alerts() if a["labels"]["alertname"] == name}
    return "firing" if "firing" in states else next(iter(states), None)


def reached(prom: PrometheusAPI, name: str, stage: str) -> bool:
    """The alert is in ``stage`` or past it (pending -> firing)."""
    return alert_state(prom, name) in (stage, "firing")


def delivered(alertmanager: str, name: str) -> dict[str, Any] | None:
    return next(
        (a for a in alertmanager_alerts(alertmanager) if a["labels"]["alertname"] == name), None
    )


@dataclass
class Pod:
    """What a Profilis pod runs, as local processes sharing a directory (the emptyDir)."""

    address: str
    metrics_port: int
    requests: dict[str, int]


@contextlib.contextmanager
def running_pod(workdir: Path) -> Iterator[Pod]:
    """The sidecar, the gunicorn app sending to it, its traffic, and steady load agents."""
    address = f"unix://{workdir / 'collector.sock'}"
    sidecar_port, app_port = free_port(), free_port()
    sidecar = [sys.executable, "-m", "profilis_sidecar", "--listen", address,
               "--metrics-host", "127.0.0.1", "--metrics-port", str(sidecar_port),
               "--service", "shop", "--forward", f"jsonl:{workdir / 'forwarded'}"]  # fmt: skip
    app = [sys.executable, "-m", "gunicorn", "--workers", str(APP_WORKERS), "--bind",
           f"127.0.0.1:{app_port}", "--graceful-timeout", "2",
           "tests.grafana.live_app:app"]  # fmt: skip
    app_env = {"PROFILIS_COLLECTOR_ADDRESS": address, "PROFILIS_TEST_DB": str(workdir / "db")}
    with (
        run_process(sidecar, port=sidecar_port),
        run_process(app, env=app_env, cwd=REPO, port=app_port),
        traffic(app_port) as requests,
        run_process(loadgen(address, STEADY_AGENTS, *STEADY)),
    ):
        yield Pod(address, sidecar_port, requests)


def check_delivered(alerts: dict[str, dict[str, Any]]) -> None:
    """Alertmanager got the queue alerts with the rules' labels, target labels and links."""
    rules = {r["alert"]: r for g in load_rules_document()["groups"] for r in g["rules"]}
    for name, alert in alerts.items():
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] == rules[name]["labels"]["severity"]
        assert {k: labels[k] for k in ("job", *TARGET_LABELS)} == {"job": JOB, **TARGET_LABELS}
        assert labels["worker"], labels
        assert annotations["runbook_url"] == rules[name]["annotations"]["runbook_url"]
        assert f"{labels['namespace']}/{labels['pod']}" in annotations["description"]


def check_healthy_pod(prom: PrometheusAPI, timeline: Timeline) -> None:
    """Before backpressure: every worker reports, every panel answers, no queue alert."""
    workers = f'profilis_sidecar_workers{{job="{JOB}"}}'
    wait_until(lambda: prom.query(workers), timeout=30, what="first scrape")
    timeline.mark("first scrape")
    expected = APP_WORKERS + STEADY_AGENTS
    wait_until(
        lambda: any(float(s["value"][1]) >= expected for s in prom.query(workers)),
        timeout=20,
        what=f"{expected} live workers",
    )
    timeline.mark(f"{expected} workers reporting")
    wait_until(functools.partial(app_visible, prom), timeout=20, what="the app's events")
    timeline.mark("app requests, function calls and DB queries visible")
    wait_for_panels(prom, timeout=30)
    timeline.mark(f"panels checked ({PANEL_QUERIES} queries x2, all non-empty)")
    for name in QUEUE_ALERTS:
        assert alert_state(prom, name) is None, f"{name} active before backpressure"


def follow_queue_alerts(
    prom: PrometheusAPI, alertmanager: str, timeline: Timeline
) -> dict[str, dict[str, Any]]:
    """Pending, then firing in Prometheus, then in Alertmanager; its alerts by name."""
    for stage in ("pending", "firing"):
        for name in QUEUE_ALERTS:
            check = functools.partial(reached, prom, name, stage)
            wait_until(check, timeout=30, every=0.1, what=f"{name} {stage}")
            timeline.mark(f"{name} {stage}")
    alerts = {}
    for name in QUEUE_ALERTS:
        check_am = functools.partial(delivered, alertmanager, name)
        alerts[name] = wait_until(check_am, timeout=30, every=0.1, what=f"{name} delivered")
        timeline.mark(f"{name} delivered to Alertmanager")
    return alerts


def test_dashboards_and_queue_alerts_on_live_prometheus(
    prometheus_tools: dict[str, str],
) -> None:
    timeline = Timeline()
    alerts: dict[str, dict[str, Any]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="pfg-", dir="/tmp"))  # socket paths must be short
    try:
        with contextlib.ExitStack() as stack:
            pod = stack.enter_context(running_pod(workdir))
            timeline.mark("sidecar, app and load running")
            alertmanager = stack.enter_context(
                running_alertmanager(prometheus_tools["prometheus-alertmanager"], workdir)
            )
            prom = stack.enter_context(
                running_prometheus(
                    prometheus_tools["prometheus"],
                    workdir,
                    target=f"127.0.0.1:{pod.metrics_port}",
                    rules=short_for_rules(workdir),
                    alertmanager=alertmanager,
                )
            )
            timeline.mark("prometheus ready")
            check_healthy_pod(prom, timeline)
            stack.enter_context(run_process(loadgen(pod.address, STALLED_AGENTS, *STALLED)))
            timeline.mark("backpressure started")
            alerts = follow_queue_alerts(prom, alertmanager, timeline)
            timeline.extra["app_requests"] = pod.requests["requests"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        timeline.extra["alerts"] = {
            n: {"labels": a["labels"], "startsAt": a["startsAt"]} for n, a in alerts.items()
        }
        timeline.write()
    check_delivered(alerts)
