"""What bench/app runs: the stacks (server + framework) and the variants (how each is
instrumented), and for each variant how to tell that it really recorded the requests.

A variant's ``deploy`` gives the server's command and environment, the helper process it
needs (Profilis 2's sidecar, the OTLP receiver), and the count of requests its output holds.
Variants that are a peer run from their own venv (bench.app.venvs); plain and Profilis 2
run from the repo's .venv, Profilis 2 the way the operator injects it (agent payload first on
PYTHONPATH, PROFILIS_* pointing at a real sidecar on a Unix socket).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.app.procs import free_port

__all__ = ["STACKS", "VARIANTS", "Deployment", "Helper", "Setup", "Stack", "Variant"]

SERVED = Path(__file__).resolve().parent / "served"
WORKERS = 2
GTHREAD_THREADS = 4


@dataclass(frozen=True)
class Stack:
    key: str
    label: str
    framework: str  # "flask" or "fastapi": the module suffix of served/*.py

    def server_argv(self, bin_dir: Path, module: str, port: int) -> list[str]:
        if self.framework == "fastapi":
            return [
                *(str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port)),
                *("--workers", str(WORKERS), "--no-access-log"),
                *("--loop", "uvloop", "--http", "httptools", f"{module}:app"),
            ]
        worker = ["--worker-class", "sync"]
        if self.key == "gunicorn-gthread":
            worker = ["--worker-class", "gthread", "--threads", str(GTHREAD_THREADS)]
        return [
            *(str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(WORKERS), *worker, f"{module}:app"),
        ]


STACKS = (
    Stack("gunicorn-sync", f"gunicorn sync x{WORKERS} + Flask", "flask"),
    Stack("gunicorn-gthread", f"gunicorn gthread x{WORKERS}x{GTHREAD_THREADS} + Flask", "flask"),
    Stack("uvicorn", f"uvicorn x{WORKERS} + FastAPI", "fastapi"),
)


@dataclass(frozen=True)
class Setup:
    """What every run shares: the repo's bin folder, the agent payload, the database, venvs."""

    repo_bin: Path
    payload: Path
    database: Path
    venv_bins: dict[str, Path]


@dataclass(frozen=True)
class Helper:
    """A process the variant needs beside the server; its CPU is the variant's too."""

    argv: list[str]
    port: int


@dataclass
class Deployment:
    argv: list[str]
    env: dict[str, str]
    helper: Helper | None = None
    #: How many requests the variant's output holds (None: nothing to check, the plain app).
    count: Callable[[], int] | None = None
    #: The count can only be read while the server runs (its metrics die with it).
    count_while_running: bool = False
    what_counts: str = ""
    #: What to add to a failed check's message (the variant's own drop counters, say).
    diagnose: Callable[[], str] | None = None


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    venv: str | None  # a bench.app.venvs.PINS key; None = the repo's .venv
    deploy: Callable[[Stack, Path, Setup, int, dict[str, str]], Deployment]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as page:
        return str(page.read().decode())


def _sum_samples(text: str, metric: str, label_filter: str = "") -> int:
    """The sum of ``metric``'s samples (Prometheus text format) whose labels hold the filter."""
    total = 0.0
    # Label values may hold braces themselves (route="/items/{item_id}"): match to the last.
    pattern = re.compile(rf"^{re.escape(metric)}(\{{.*\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and label_filter in (match.group(1) or ""):
            total += float(match.group(2))
    return round(total)


def _plain(stack: Stack, run: Path, setup: Setup, port: int, env: dict[str, str]) -> Deployment:
    argv = stack.server_argv(setup.repo_bin, f"{stack.framework}_app", port)
    return Deployment(argv, {**env, "PYTHONPATH": str(SERVED)})


def _profilis2(stack: Stack, run: Path, setup: Setup, port: int, env: dict[str, str]) -> Deployment:
    socket_path = run / "collector.sock"
    metrics_port = free_port()
    sidecar = [
        *(str(setup.repo_bin / "profilis-sidecar"), "--listen", f"unix://{socket_path}"),
        *("--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)),
    ]
    agent_env = {
        **env,
        # Prepended, as the operator does, before the app's own path.
        "PYTHONPATH": f"{setup.payload}:{SERVED}",
        "PROFILIS_SERVICE_NAME": "bench-app",
        "PROFILIS_EXPORTERS": "collector",
        "PROFILIS_COLLECTOR_ADDRESS": f"unix://{socket_path}",
    }
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    return Deployment(
        stack.server_argv(setup.repo_bin, f"{stack.framework}_app", port),
        agent_env,
        helper=Helper(sidecar, metrics_port),
        count=lambda: _sum_samples(_get(url), "profilis_http_requests_total"),
        what_counts="the sidecar's profilis_http_requests_total",
        diagnose=lambda: _health_lines(_get(url)),
    )


def _health_lines(metrics: str) -> str:
    """The sidecar's drop, loss and export counters: where missing events went."""
    wanted = (
        "profilis_events_dropped_total",
        "profilis_sidecar_batches_lost_total",
        "profilis_sidecar_events_received_total",
        "profilis_events_exported_total",
        "profilis_export_errors_total",
    )
    lines = [line for line in metrics.splitlines() if line.startswith(wanted)]
    return "; ".join(lines) or "no health counters"


def _profilis1(stack: Stack, run: Path, setup: Setup, port: int, env: dict[str, str]) -> Deployment:
    sink = run / "profilis1-jsonl"
    sink.mkdir()

    def count() -> int:
        events = 0
        for path in sink.iterdir():
            for line in path.read_bytes().splitlines():
                if line.strip() and json.loads(line).get("kind") in ("REQ", "HTTP"):
                    events += 1
        return events

    return Deployment(
        stack.server_argv(setup.venv_bins["app-profilis1"], f"profilis1_{stack.framework}", port),
        {**env, "PYTHONPATH": str(SERVED), "BENCH_APP_SINK_DIR": str(sink)},
        count=count,
        what_counts="REQ events in Profilis 1.0's JSONL files",
    )


def _otel(stack: Stack, run: Path, setup: Setup, port: int, env: dict[str, str]) -> Deployment:
    bin_dir = setup.venv_bins["app-otel"]
    receiver_port = free_port()
    otel_env = {
        **env,
        "PYTHONPATH": str(SERVED),
        "OTEL_SERVICE_NAME": "bench-app",
        "OTEL_TRACES_EXPORTER": "otlp_proto_http",
        "OTEL_METRICS_EXPORTER": "otlp_proto_http",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
        # The default queue (2048 spans) overflows under this load with FastAPI's three spans a
        # request, and spans dropped are work not done: a bigger queue keeps the check exact.
        "OTEL_BSP_MAX_QUEUE_SIZE": "16384",
    }
    receiver = [str(bin_dir / "python"), str(SERVED / "otlp_receiver.py"), str(receiver_port)]
    url = f"http://127.0.0.1:{receiver_port}/count"
    return Deployment(
        [
            str(bin_dir / "opentelemetry-instrument"),
            *stack.server_argv(bin_dir, f"{stack.framework}_app", port),
        ],
        otel_env,
        helper=Helper(receiver, receiver_port),
        count=lambda: int(json.loads(_get(url))["server_spans"]),
        what_counts="SERVER spans at the OTLP receiver",
    )


def _prometheus(
    stack: Stack, run: Path, setup: Setup, port: int, env: dict[str, str]
) -> Deployment:
    bin_dir = setup.venv_bins["app-prometheus"]
    multiproc = run / "prometheus-multiproc"
    multiproc.mkdir()
    prom_env = {**env, "PYTHONPATH": str(SERVED), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    argv = stack.server_argv(bin_dir, f"prometheus_{stack.framework}", port)
    if stack.framework == "fastapi":
        url = f"http://127.0.0.1:{port}/metrics"
        metric, label_filter = "http_requests_total", ""
        what = "prometheus-fastapi-instrumentator's http_requests_total"
    else:
        metrics_port = free_port()
        prom_env["BENCH_APP_METRICS_PORT"] = str(metrics_port)
        argv[1:1] = ["--config", str(SERVED / "gunicorn_prometheus.py")]
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        metric, label_filter = "flask_http_request_total", ""
        what = "prometheus_flask_exporter's flask_http_request_total"

    def count() -> int:
        text = _get(url)
        if stack.framework == "fastapi":
            # The scrape itself is a request to the app's /metrics handler: leave it out.
            return sum(
                _sum_samples(text, metric, f'handler="{handler}"')
                for handler in ("/", "/items/{item_id}", "/users/{user_id}")
            )
        return _sum_samples(text, metric, label_filter)

    return Deployment(argv, prom_env, count=count, count_while_running=True, what_counts=what)


VARIANTS = (
    Variant("plain", "plain", None, _plain),
    Variant("profilis2", "Profilis 2 agent + sidecar", None, _profilis2),
    Variant("profilis1", "Profilis 1.0", "app-profilis1", _profilis1),
    Variant("otel", "OpenTelemetry zero-code", "app-otel", _otel),
    Variant("prometheus", "prometheus exporter", "app-prometheus", _prometheus),
)
