"""Real Prometheus and Alertmanager on loopback, with the project's alert rules.

Prometheus scrapes the pod's sidecar every second (job ``profilis-sidecar``, with the
``namespace``/``pod`` target labels a PodMonitor would add) and sends alerts to Alertmanager.
The config builders are shared with ``tests/grafana/live_stack.py``. Where the Debian packages
are missing and cannot be installed (``scripts/install-prometheus.sh`` exit 2), the demo says
so and runs without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from demo.processes import DemoError, Process, free_port, http_ok, wait_http

__all__ = [
    "ALERTMANAGER_CONFIG",
    "JOB",
    "QUEUE_ALERTS",
    "WATCHED_ALERTS",
    "Monitoring",
    "Page",
    "demo_rules",
    "firing_and_pending",
    "monitoring_pages",
    "prometheus_config",
    "start_monitoring",
]

REPO = Path(__file__).resolve().parents[1]
RULES_FILE = REPO / "grafana" / "rules" / "profilis-alerts.yaml"
INSTALL_SCRIPT = REPO / "scripts" / "install-prometheus.sh"
JOB = "profilis-sidecar"
SCRAPE_INTERVAL_S = 1
#: Shortened in BACKPRESSURE mode so the alert path shows within a minute, not after 5.
QUEUE_ALERTS = ("ProfilisQueueFilling", "ProfilisQueueSaturated", "ProfilisEventsDropped")
#: The alerts whose firing and arrival at Alertmanager the demo announces, in this order.
WATCHED_ALERTS = ("ProfilisQueueFilling", "ProfilisQueueSaturated")
SHORT_FOR = "5s"
ALERTMANAGER_CONFIG: Mapping[str, Any] = {
    "route": {"receiver": "record", "group_wait": "1s", "group_interval": "1s"},
    "receivers": [{"name": "record"}],  # no integration: its UI and API show what arrived
}


def prometheus_config(
    target: str, rules: Path, alertmanager: str, target_labels: Mapping[str, str]
) -> str:
    interval = f"{SCRAPE_INTERVAL_S}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [target], "labels": dict(target_labels)}],
            }
        ],
    }
    return yaml.safe_dump(config)


def demo_rules(directory: Path, *, short_queue_alerts: bool) -> Path:
    """The project's rules file, with the queue alerts' `for` cut to seconds when asked."""
    document = yaml.safe_load(RULES_FILE.read_text())
    if short_queue_alerts:
        for group in document["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in QUEUE_ALERTS:
                    rule["for"] = SHORT_FOR
    path = directory / RULES_FILE.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass
class Monitoring:
    prometheus_url: str
    alertmanager_url: str
    processes: list[Process]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _binaries() -> tuple[str, str] | str:
    """The two servers' paths, or why they are not there."""
    names = ("prometheus", "prometheus-alertmanager")
    if any(shutil.which(name) is None for name in names):
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            return result.stderr.strip() or f"{INSTALL_SCRIPT.name} exited {result.returncode}"
    paths = [shutil.which(name) for name in names]
    if paths[0] is None or paths[1] is None:
        return "prometheus / prometheus-alertmanager not on PATH"
    return paths[0], paths[1]


def start_monitoring(
    workdir: Path, *, target: str, target_labels: Mapping[str, str], short_queue_alerts: bool
) -> Monitoring | str:
    """Running Prometheus and Alertmanager, or the reason they could not start."""
    found = _binaries()
    if isinstance(found, str):
        return found
    prometheus, alertmanager = found
    am_port, prom_port = free_port(9093), free_port(9090)
    am_config = workdir / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(dict(ALERTMANAGER_CONFIG)))
    processes = [
        Process.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # no gossip port
            ],
            workdir / "alertmanager.log",
        )
    ]
    rules = demo_rules(workdir, short_queue_alerts=short_queue_alerts)
    prom_config = workdir / "prometheus.yml"
    prom_config.write_text(prometheus_config(target, rules, f"127.0.0.1:{am_port}", target_labels))
    processes.append(
        Process.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            workdir / "prometheus.log",
        )
    )
    monitoring = Monitoring(
        f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}", processes
    )
    try:
        wait_http(f"{monitoring.alertmanager_url}/-/ready", timeout_s=30, process=processes[0],
                  what="Alertmanager")  # fmt: skip
        wait_http(f"{monitoring.prometheus_url}/-/ready", timeout_s=30, process=processes[1],
                  what="Prometheus")  # fmt: skip
    except DemoError as exc:
        monitoring.stop()
        return str(exc)
    return monitoring


@dataclass(frozen=True)
class Page:
    """A URL the demo prints, with a note when it is not the page one would expect."""

    label: str
    url: str
    note: str = ""


#: What Debian's prometheus-alertmanager serves at / instead of the web UI it leaves out.
_NO_WEB_UI = b"does not include a web"


def monitoring_pages(monitoring: Monitoring) -> list[Page]:
    """Prometheus' alerts page and Alertmanager's alerts, where these builds serve them.

    Debian's Prometheus packages only the classic UI: ``/alerts`` is a 404 there while
    ``/classic/alerts`` lists every rule; upstream builds serve ``/alerts``. Debian's
    Alertmanager has no web UI at all (its ``/`` says so), so its JSON API is what to open.
    """
    prometheus = monitoring.prometheus_url
    alerts = next(
        (prometheus + p for p in ("/alerts", "/classic/alerts") if http_ok(prometheus + p)),
        prometheus + "/api/v1/rules",
    )
    pages = [Page("Prometheus alerts", alerts)]
    alertmanager = monitoring.alertmanager_url
    try:
        with urllib.request.urlopen(alertmanager + "/", timeout=2) as response:
            web_ui = _NO_WEB_UI not in response.read(8192)
    except OSError:
        web_ui = False
    if web_ui:
        pages.append(Page("Alertmanager", alertmanager + "/#/alerts"))
    else:
        pages.append(
            Page(
                "Alertmanager API",
                alertmanager + "/api/v2/alerts",
                "JSON, the alerts it received; this build has no web UI",
            )
        )
    return pages


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def firing_and_pending(monitoring: Monitoring) -> tuple[list[str], list[str], list[str]]:
    """Alert names firing and pending in Prometheus, and the alerts Alertmanager holds (one
    name per alert, so a name repeats for each worker it fired for)."""
    alerts = _get_json(f"{monitoring.prometheus_url}/api/v1/alerts")["data"]["alerts"]
    firing = sorted({a["labels"]["alertname"] for a in alerts if a["state"] == "firing"})
    pending = sorted({a["labels"]["alertname"] for a in alerts if a["state"] == "pending"})
    received = _get_json(f"{monitoring.alertmanager_url}/api/v2/alerts")
    return firing, pending, sorted(a["labels"]["alertname"] for a in received)
