"""The dashboard in a real headless Chromium (driven by selenium through chromedriver).

The page is served by gunicorn (the Flask app of test_servers.py) after a known load; the
test reads what the browser drew: charts with the routes in them, the sortable routes
table, errors, functions, queries and collector health. Screenshots go to
test-artifacts/ui/ (git-ignored): the whole page, and the first 1280x800 screen. The pod
dashboard of a real sidecar, with a worker table as wide as a pod gives it, must fit a 1280 px
window: no page-wide horizontal scroll, nothing wider than its panel.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.adapters.servers import Server, serve
from tests.sidecar.helpers import agent_datagram, get, running_sidecar, short_dir, wait_for
from tests.support.processes import free_port
from tests.ui.apps.common import TOKEN
from tests.ui.load import FLASK, gunicorn_one_worker_argv, plan, send

pytestmark = pytest.mark.slow

PAGE_TIMEOUT_S = 20.0
WAVES = 4
ITEM_ROUTE = FLASK.item_route
WORK_ROUTE = FLASK.work_route


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("ui-browser"), gunicorn_one_worker_argv) as running:
        # In waves a second apart, so the time charts have several points to draw.
        requests = plan(FLASK)
        for wave in range(WAVES):
            if wave:
                time.sleep(1.0)
            send(running.url, requests[wave::WAVES])
        yield running


def open_dashboard(browser: WebDriver, url: str, routes: int) -> None:
    """Load the page and wait until it has drawn ``routes`` table rows from metrics.json."""
    browser.get(url)

    def drawn(driver: WebDriver) -> bool:
        if driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error":
            raise AssertionError(driver.find_element(By.ID, "banner").text)
        return len(driver.find_elements(By.CSS_SELECTOR, "#routes-table tbody tr")) >= routes

    WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.1).until(drawn)


def column(browser: WebDriver, table_id: str, key: str) -> list[str]:
    headers = browser.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")
    index = [h.get_attribute("data-key") for h in headers].index(key)
    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in rows]


def set_viewport(browser: WebDriver, width: int, height: int) -> None:
    """Size the window so that the page itself gets ``width`` x ``height`` pixels."""
    browser.set_window_size(width, height)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(2 * width - int(inner[0]), 2 * height - int(inner[1]))
    time.sleep(0.3)  # the charts redraw at the new size (debounced resize handler)


def screenshot(browser: WebDriver, path: Path) -> None:
    """The first screen as a 1280x800 laptop shows it, then the whole page."""
    set_viewport(browser, 1280, 800)
    browser.save_screenshot(str(path.with_name(path.stem + "-1280x800.png")))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    set_viewport(browser, 1280, max(800, int(height)))
    browser.save_screenshot(str(path))
    set_viewport(browser, 1280, 800)


def test_the_page_draws_charts_and_tables_holding_the_routes(browser, server, artifacts):
    open_dashboard(browser, f"{server.url}/_profilis", routes=4)
    routes = column(browser, "routes-table", "route")
    assert routes == [ITEM_ROUTE, WORK_ROUTE, "/boom", "<unmatched>"]  # by count, descending
    assert column(browser, "routes-table", "count") == ["240", "84", "16", "8"]

    # The top-routes chart: one bar group per route, labelled with it.
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-routes svg g.route-bar")
    assert [bar.get_attribute("data-route") for bar in bars] == routes
    labels = [bar.find_element(By.CSS_SELECTOR, "text.bar-label").text for bar in bars]
    assert labels[0] == f"GET {ITEM_ROUTE}"
    # The time charts: a drawn line per series (not an empty "no requests" note).
    for chart, series in (
        ("chart-rate", ["requests/s", "errors/s"]),
        ("chart-latency", ["p50", "p95", "p99"]),
    ):
        paths = browser.find_elements(By.CSS_SELECTOR, f"#{chart} svg path.series")
        assert [p.get_attribute("data-series") for p in paths] == series
        assert paths[0].get_attribute("d").startswith("M"), chart

    assert browser.find_element(By.ID, "kpi-requests").text == "348"
    assert column(browser, "error-types-table", "error") == ["ValueError"]
    assert column(browser, "functions-table", "fn") == ["flask_ui_app.load_user"]
    assert column(browser, "db-queries-table", "query") == ["SELECT name FROM users WHERE id = ?"]
    assert "Enqueued" in browser.find_element(By.ID, "collector").text
    screenshot(browser, artifacts / "dashboard-flask.png")


def test_clicking_a_column_sorts_the_routes_table(browser, server):
    open_dashboard(browser, f"{server.url}/_profilis/", routes=4)
    header = browser.find_element(By.CSS_SELECTOR, '#routes-table th[data-key="route"]')
    header.click()
    header = browser.find_element(By.CSS_SELECTOR, '#routes-table th[data-key="route"]')
    assert header.get_attribute("aria-sort") == "ascending"
    routes = column(browser, "routes-table", "route")
    assert routes == sorted(routes)
    header.click()
    assert column(browser, "routes-table", "route") == sorted(routes, reverse=True)
    # The next poll redraws the table and keeps the order the user chose.
    generated = browser.find_element(By.TAG_NAME, "body").get_attribute("data-generated-at")
    WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.1).until(
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-generated-at") != generated
        )
    )
    assert column(browser, "routes-table", "route") == sorted(routes, reverse=True)


def test_the_page_passes_a_url_token_on_to_metrics_json(browser, server):
    open_dashboard(browser, f"{server.url}/_profilis_private?token={TOKEN}", routes=4)
    assert browser.find_element(By.ID, "banner").get_attribute("hidden") is not None


def test_without_the_token_the_protected_page_is_refused(browser, server):
    browser.get(f"{server.url}/_profilis_private")
    assert "token is required" in browser.find_element(By.TAG_NAME, "body").text


# --------------------------------------------------------------------------- 1280 px
#: What a busy pod reports: four gunicorn workers of the shop and two processes of a second,
#: long-named service, two of them sharing a pid (so their worker label is ``pid@service``).
POD_WORKERS = [
    *((pid, "shop") for pid in (2_147_001, 2_147_002, 2_147_003, 2_147_004)),
    (2_147_001, "checkout-payments-reconciliation"),
    (3_999_999, "checkout-payments-reconciliation"),
]
#: Lists whatever overflows: the page sideways, a panel past its edge, a table past its box.
OVERFLOW_JS = """
const out = [];
const doc = document.documentElement;
if (doc.scrollWidth > doc.clientWidth) out.push(`page ${doc.scrollWidth} > ${doc.clientWidth}`);
for (const panel of document.querySelectorAll(".panel, .kpi")) {
  if (panel.scrollWidth > panel.clientWidth) {
    out.push(`${panel.querySelector("h2")?.textContent || panel.className}: ` +
             `${panel.scrollWidth} > ${panel.clientWidth}`);
  }
}
for (const table of document.querySelectorAll("table")) {
  const box = table.parentElement;
  if (table.scrollWidth > box.clientWidth) {
    out.push(`#${table.id} ${table.scrollWidth} > its box ${box.clientWidth}`);
  }
}
return out;
"""


def _pod_events(now_ns: int, n: int) -> list[object]:
    base = {"ts_ns": now_ns, "dur_ns": 4_000_000 + n * 1_000}
    return [
        {**base, "kind": "HTTP", "method": "GET", "route": f"/orders/{{id}}/items/{n % 3}",
         "status": 200 if n % 5 else 500},
        {**base, "kind": "FN", "fn": f"shop.billing.pricing.price_order_with_discounts_{n % 2}"},
        {**base, "kind": "DB", "db_vendor": "postgresql", "rows": 1,
         "query": "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = "
                  "o.customer_id WHERE o.id = ? AND o.status IN (?, ?) ORDER BY o.created_at"},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pod_dashboard() -> Iterator[str]:
    """The /_profilis/ URL of a real sidecar that ``POD_WORKERS`` have reported to."""
    with short_dir() as tmp:
        sock_path, port = tmp / "c.sock", free_port()
        with (
            running_sidecar(sock_path, port=port),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
        ):
            for index, (pid, service) in enumerate(POD_WORKERS):
                events = [e for n in range(20) for e in _pod_events(time.time_ns(), n)]
                sock.sendto(
                    agent_datagram(pid=pid, service=service, events=events,
                                   queue_depth=1_234, queue_capacity=8_192,
                                   exported=12_345_678 + index, dropped_queue=98_765,
                                   dropped_transport=4_321),
                    str(sock_path),
                )  # fmt: skip

            def collector() -> dict[str, object]:
                document = json.loads(get(port, "/_profilis/metrics.json")[1])
                return dict(document["collector"])

            shown = wait_for(collector, lambda c: len(c["workers"]) == len(POD_WORKERS), timeout=15)
            assert len(shown["workers"]) == len(POD_WORKERS), shown  # type: ignore[arg-type]
            yield f"http://127.0.0.1:{port}/_profilis/"


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_pod_dashboard_fits_the_window(browser, pod_dashboard, artifacts, width):
    """1280 px: the 2-column layout; 1920 px: the wide one (collector health on its own row)."""
    set_viewport(browser, width, 800)
    browser.get(pod_dashboard)
    WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.1).until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#workers-table tbody tr")) == len(POD_WORKERS)
            and d.find_elements(By.CSS_SELECTOR, "#functions-table tbody tr td.name")
        )
    )
    page_width = browser.execute_script("return document.documentElement.clientWidth")
    assert width - 20 <= page_width <= width  # the page got what was asked (less a scrollbar)
    overflowing = browser.execute_script(OVERFLOW_JS)
    browser.save_screenshot(str(artifacts / f"pod-dashboard-{width}.png"))
    assert overflowing == []
    # Fitting is no excuse for hiding: every worker column is there, its numbers readable.
    headers = browser.find_elements(By.CSS_SELECTOR, "#workers-table thead th")
    assert len(headers) == 9
    exported = column(browser, "workers-table", "exported")
    assert sorted(exported) == [f"12,345,{678 + i}" for i in range(len(POD_WORKERS))]
    # Cut names keep their full text in the tooltip.
    services = browser.find_elements(By.CSS_SELECTOR, "#workers-table td.name")
    assert "checkout-payments-reconciliation" in {cell.get_attribute("title") for cell in services}
