"""The demo's Prometheus side: its copy of the rules, running on without the servers, and the
pages it links for the builds it finds."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import yaml

from demo import monitoring
from demo.monitoring import (
    QUEUE_ALERTS,
    RULES_FILE,
    SHORT_FOR,
    Monitoring,
    Page,
    demo_rules,
    monitoring_pages,
    start_monitoring,
)


def _for_values(path: Path) -> dict[str, str]:
    document = yaml.safe_load(path.read_text())
    return {r["alert"]: r["for"] for g in document["groups"] for r in g["rules"] if "alert" in r}


def test_backpressure_rules_shorten_only_the_queue_alerts(tmp_path: Path) -> None:
    real = _for_values(RULES_FILE)
    short = _for_values(demo_rules(tmp_path, short_queue_alerts=True))
    assert {name: short[name] for name in QUEUE_ALERTS} == dict.fromkeys(QUEUE_ALERTS, SHORT_FOR)
    assert {k: v for k, v in short.items() if k not in QUEUE_ALERTS} == {
        k: v for k, v in real.items() if k not in QUEUE_ALERTS
    }
    assert _for_values(demo_rules(tmp_path, short_queue_alerts=False)) == real


def test_without_prometheus_the_demo_gets_the_reason_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "install-prometheus: not root; run as root: apt-get install ..."
    monkeypatch.setattr(monitoring, "_binaries", lambda: reason)
    started = start_monitoring(
        tmp_path, target="127.0.0.1:1", target_labels={}, short_queue_alerts=False
    )
    assert started == reason


class _Builds(http.server.BaseHTTPRequestHandler):
    """Prometheus and Alertmanager as upstream builds them: ``/alerts`` and a web UI."""

    def do_GET(self) -> None:
        if self.path in ("/alerts", "/"):
            body = b"<!doctype html><title>Alertmanager</title><div id=app></div>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_with_upstream_builds_the_demo_links_their_web_uis() -> None:
    # The Debian builds (classic alerts page, Alertmanager's API) are what test_demo_urls runs.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Builds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        pages = monitoring_pages(Monitoring(url, url, []))
    finally:
        server.shutdown()
        server.server_close()
    assert pages == [
        Page("Prometheus alerts", f"{url}/alerts"),
        Page("Alertmanager", f"{url}/#/alerts"),
    ]
