"""The dashboard in a server that routes by hand, as the sidecar's ``http.server`` does:
``Dashboard.respond_to`` answers under its prefix and leaves every other path alone.
The store is fed decoded JSON, as off the network, malformed events included."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from profilis.core.stats import StatsStore
from profilis.ui import Dashboard

TOKEN = "pod-token"
#: What a pod-wide health source reports: the sum over the agent processes, and each of them.
WORKERS = [
    {"service": "shop", "pid": 101, "queue_depth": 3, "queue_capacity": 2048, "exported": 900},
    {"service": "shop", "pid": 102, "queue_depth": 1, "queue_capacity": 2048, "exported": 850},
]
POD_HEALTH = {
    "queue_depth": 4,
    "queue_capacity": 4096,
    "enqueued": 1754,
    "exported": 1750,
    "dropped": {"queue": 0, "transport": 0, "decode": 1},
    "dropped_total": 1,
    "export_errors": 0,
    "workers": WORKERS,
}


@pytest.fixture
def server() -> Iterator[tuple[str, StatsStore]]:
    stats = StatsStore(collector=lambda: POD_HEALTH)
    dashboard = Dashboard(stats, auth_token=TOKEN)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            reply = dashboard.respond_to("GET", self.path, self.headers.get)
            if reply is None:  # the server's own routes
                status, headers, body = 200, [("Content-Length", "3")], b"own"
            else:
                status, headers, body = reply.status, list(reply.headers), reply.body
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", stats
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_the_prefix_is_the_dashboard_and_the_rest_is_the_servers(server):
    url, stats = server
    wire = json.dumps(
        [
            {
                "kind": "HTTP",
                "dur_ns": 3_000_000,
                "method": "GET",
                "route": "/a",
                "status": 500,
                "error": "KeyError",
                "trace_id": "x" * 5000,
            },
            {"kind": "HTTP", "dur_ns": 1_000_000, "method": ["GET"], "route": "/b", "status": 200},
            {"kind": "HTTP", "dur_ns": 1_000_000, "method": "GET", "route": "/c", "status": "200"},
            "not an event",
        ]
    )
    stats(json.loads(wire))
    auth = {"X-Profilis-Token": TOKEN}
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/metrics").text == "own"
        assert client.get("/_profilisX").text == "own"
        assert client.get("/_profilis").status_code == 401
        page = client.get("/_profilis", params={"token": TOKEN})
        assert page.status_code == 200
        assert 'data-metrics-url="/_profilis/metrics.json"' in page.text
        assert client.get("/_profilis/assets/dashboard.js").status_code == 200
        metrics = client.get("/_profilis/metrics.json", headers=auth).json()
    assert [(r["route"], r["errors"]) for r in metrics["routes"]] == [("/a", 1)]
    assert metrics["store"]["ignored"] == 3
    (error,) = metrics["errors"]["recent"]
    assert (error["error"], error["trace_id"]) == ("KeyError", None)  # a bad id is not kept
    assert metrics["collector"] == POD_HEALTH


@pytest.mark.slow
def test_the_pod_page_in_a_browser_lists_the_workers(server, browser, artifacts):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, stats = server
    stats([{"kind": "HTTP", "dur_ns": 2_000_000, "method": "GET", "route": "/cart", "status": 200}])
    browser.get(f"{url}/_profilis?token={TOKEN}")
    rows = WebDriverWait(browser, 20, poll_frequency=0.1).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#workers-table tbody tr")
    )
    assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows] == ["101", "102"]
    assert browser.find_element(By.ID, "kpi-queue").text == "4 / 4,096"
    browser.save_screenshot(str(artifacts / "dashboard-pod-1280x800.png"))
