"""`make demo` in a terminal, as a user runs it: every URL it prints answers with what it
promises, the shop's ``@profile``d functions reach the sidecar, and Ctrl-C ends it cleanly.

The fixture runs ``make demo DURATION=<bound>`` from this working tree on a pseudo-terminal
(``setsid --ctty``: make leads a session whose controlling terminal is the pty, as in a
shell), reads the "Where to look" block, GETs every URL once the shop's function series have
reached the sidecar, then types Ctrl-C (``\\x03`` on the pty: the kernel sends SIGINT to the
terminal's foreground group, exactly as a keyboard does). The tests assert on that one run.
What each URL answered is kept in test-artifacts/demo-urls.txt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.live]

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "grafana" / "rules" / "profilis-alerts.yaml"
ARTIFACT = REPO / "test-artifacts" / "demo-urls.txt"
#: The demo ends on its own after this, should Ctrl-C not reach it.
DURATION_S = 240
START_TIMEOUT_S = 120  # setup (a no-op here), pod, Prometheus, Alertmanager on a busy machine
FUNCTIONS_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
#: The shop's @profile'd functions (examples/demo/app.py), as the agent names them.
FUNCTIONS = ("app.price_order", "app.compute_revenue", "app.charge_card")
WHERE_LINE = re.compile(r"^  (\S.*?)\s{2,}(https?://\S+)(?:\s+\((.*)\))?$")
URL = re.compile(r"https?://[^\s)]+")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class DemoRun:
    output: str = ""
    pages: dict[str, str] = field(default_factory=dict)  # label -> URL
    notes: dict[str, str] = field(default_factory=dict)  # label -> note after the URL
    answers: dict[str, Answer] = field(default_factory=dict)  # URL -> what it answered
    dashboard_data: Answer | None = None  # what the pod dashboard page draws from
    exit_code: int | None = None


def get(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return Answer(
                response.status, response.headers.get("Content-Type", ""), response.read()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("Content-Type", ""), error.read())


class Terminal:
    """``argv`` run as the leader of a new session on a pseudo-terminal; output collected."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            ["setsid", "--ctty", "--wait", *argv],
            cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave,
        )  # fmt: skip
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    def text(self) -> str:
        with self._lock:
            raw = b"".join(self._chunks).decode("utf-8", "replace")
        # The pty turns \n into \r\n; the demo's progress line rewrites itself with \r.
        return raw.replace("\r\n", "\n")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            match = re.search(pattern, self.text(), re.MULTILINE)
            if match:
                return match
            time.sleep(0.2)
        return re.search(pattern, self.text(), re.MULTILINE)

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._reader.join(10)
        os.close(self.master)


def dashboard_data(page_url: str) -> Answer | None:
    """What the dashboard page at ``page_url`` draws from (its ``data-metrics-url``)."""
    data_url = re.search(r'data-metrics-url="([^"]+)"', get(page_url).text())
    return get(urllib.parse.urljoin(page_url, data_url.group(1))) if data_url else None


def functions_shown(pages: dict[str, str]) -> bool:
    """The shop's functions are in the sidecar's /metrics and in the dashboard's data."""
    if "sidecar metrics" not in pages or "pod dashboard" not in pages:
        return True  # nothing to wait for: the tests fail on the missing lines
    metrics = get(pages["sidecar metrics"]).text()
    data = dashboard_data(pages["pod dashboard"])
    return data is not None and all(
        f'profilis_function_calls_total{{function="{fn}"' in metrics and f'"{fn}"' in data.text()
        for fn in FUNCTIONS
    )


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoRun]:
    if shutil.which("make") is None or shutil.which("setsid") is None:
        pytest.skip("make or setsid (util-linux) is not installed")
    if shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None:
        pytest.skip("prometheus / prometheus-alertmanager are not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    terminal = Terminal(["make", "demo", f"DURATION={DURATION_S}"], {**env, "TERM": "dumb"})
    run = DemoRun()
    try:
        started = terminal.wait_for(r"^(Ctrl-C stops everything\.|Running \d+ s\.)$",
                                    START_TIMEOUT_S)  # fmt: skip
        assert started, f"the demo printed no URLs:\n{terminal.text()[-5000:]}"
        block = terminal.text().split("Where to look:\n", 1)[1].split(started.group(0))[0]
        for line in block.splitlines():
            match = WHERE_LINE.match(line)
            if match:
                run.pages[match.group(1)] = match.group(2)
                run.notes[match.group(1)] = match.group(3) or ""
        # Every function called at least once, and through to the page's data.
        deadline = time.monotonic() + FUNCTIONS_TIMEOUT_S
        while not functions_shown(run.pages) and time.monotonic() < deadline:
            time.sleep(0.5)
        for url in URL.findall(terminal.text()):
            run.answers[url] = get(url)
        if "pod dashboard" in run.pages:
            run.dashboard_data = dashboard_data(run.pages["pod dashboard"])
        terminal.ctrl_c()
        run.exit_code = terminal.process.wait(STOP_TIMEOUT_S)
    finally:
        terminal.close()
        run.output = terminal.text()
    ARTIFACT.parent.mkdir(exist_ok=True)
    answered = (
        f"GET {url}\n  -> {a.status} {a.content_type}: {a.text()[:300]!r}"
        for url, a in run.answers.items()
    )
    ARTIFACT.write_text(
        "\n".join(answered)
        + f"\n\n== the terminal (make exit status {run.exit_code}) ==\n{run.output}"
    )
    yield run
    logs = re.search(r"^demo: logs kept in (.+)$", run.output, re.MULTILINE)
    if logs and Path(logs.group(1)).is_relative_to(REPO / "build"):
        shutil.rmtree(logs.group(1), ignore_errors=True)  # this test's own run


def test_it_prints_the_shop_sidecar_dashboard_prometheus_and_alertmanager(demo: DemoRun) -> None:
    assert list(demo.pages) == [
        "shop (the app)",
        "sidecar metrics",
        "pod dashboard",
        "Prometheus alerts",
        demo_alertmanager_label(demo),
    ], demo.output
    # Nothing else in the output is a URL: whatever the demo prints, this test opens.
    assert set(demo.answers) == set(demo.pages.values()), demo.output


def demo_alertmanager_label(demo: DemoRun) -> str:
    return next((label for label in demo.pages if label.startswith("Alertmanager")), "none")


def test_every_printed_url_answers_200(demo: DemoRun) -> None:
    failed = {url: a.status for url, a in demo.answers.items() if a.status != 200}
    assert not failed, failed


def test_the_shop_answers_with_orders(demo: DemoRun) -> None:
    answer = demo.answers[demo.pages["shop (the app)"]]
    assert answer.content_type.startswith("application/json")
    assert len(json.loads(answer.body)["orders"]) > 0


def test_the_sidecar_metrics_hold_requests_db_queries_and_the_shops_functions(
    demo: DemoRun,
) -> None:
    text = demo.answers[demo.pages["sidecar metrics"]].text()
    assert re.search(r'^profilis_http_requests_total\{.*service="shop"', text, re.MULTILINE)
    assert re.search(r"^profilis_db_queries_total\{.*\} [1-9]", text, re.MULTILINE)
    for fn in FUNCTIONS:
        calls = re.search(rf'^profilis_function_calls_total\{{function="{fn}".*\}} (\S+)$',
                          text, re.MULTILINE)  # fmt: skip
        assert calls and float(calls.group(1)) > 0, f"no calls of {fn} in /metrics"
        assert f'profilis_function_duration_seconds_bucket{{function="{fn}"' in text


def test_the_pod_dashboard_page_and_its_functions_panel_data(demo: DemoRun) -> None:
    page = demo.answers[demo.pages["pod dashboard"]].text()
    assert "<html" in page.lower() and 'id="functions-table"' in page
    # The data the page draws its Functions panel from (its data-metrics-url).
    assert demo.dashboard_data is not None, page[:2000]
    assert demo.dashboard_data.status == 200
    document = json.loads(demo.dashboard_data.body)
    shown = {row["fn"] for row in document["functions"]}
    assert set(FUNCTIONS) <= shown, shown


def test_prometheus_alerts_page_lists_every_profilis_alert_rule(demo: DemoRun) -> None:
    answer = demo.answers[demo.pages["Prometheus alerts"]]
    assert answer.content_type.startswith("text/html")
    rules = yaml.safe_load(RULES.read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert names, RULES
    missing = [name for name in names if name not in answer.text()]
    assert not missing, f"not on {demo.pages['Prometheus alerts']}: {missing}"


def test_alertmanager_link_is_its_ui_or_its_api_and_says_which(demo: DemoRun) -> None:
    label = demo_alertmanager_label(demo)
    answer = demo.answers[demo.pages[label]]
    if label == "Alertmanager API":
        # Debian's build: no web UI, so the API, and the line says why.
        assert "no web UI" in demo.notes[label]
        assert isinstance(json.loads(answer.body), list)  # the alerts it received
    else:
        assert "does not include a web" not in answer.text()


def test_ctrl_c_stops_everything_exits_0_and_keeps_the_logs(demo: DemoRun) -> None:
    assert demo.exit_code == 0, demo.output[-3000:]
    assert "make: ***" not in demo.output, demo.output[-3000:]  # no "Interrupt", no "Error"
    assert "== Profilis demo: final summary" in demo.output
    assert "demo: everything stopped." in demo.output
    logs = re.search(r"^demo: logs kept in (.+)$", demo.output, re.MULTILINE)
    assert logs, demo.output[-2000:]
    folder = Path(logs.group(1))
    assert folder.is_dir() and folder.is_relative_to(REPO / "build" / "demo-logs")
    pod_log = (folder / "pod.log").read_text()
    assert "[profilis-sidecar]" in pod_log and "[shop]" in pod_log
    assert "Booting worker" in pod_log  # gunicorn's own lines
    for name in ("prometheus.log", "alertmanager.log", "pod.yaml"):
        assert (folder / name).is_file(), name
