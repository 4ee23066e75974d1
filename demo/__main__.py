"""``python -m demo`` (what ``make demo`` runs): start the pipeline, show it, stop it cleanly.

Order: inject and run the pod (``demo.pod``), wait for the sidecar and gunicorn, start
Prometheus/Alertmanager if they can run (``demo.monitoring``), drive traffic
(``demo.traffic``), print a live line every few seconds and a final summary
(``demo.summary``), and say when the queue alerts fire in Prometheus and reach Alertmanager.
``--backpressure`` throttles the pod's real sidecar (``demo.pod.Backpressure``: an
ingest-rate limit, and a small agent queue through the pod's ProfilisConfig), so the shop
workers' queues fill and ProfilisQueueFilling, then ProfilisQueueSaturated fire. Everything
started is stopped in reverse order, on the deadline, on Ctrl-C or SIGTERM alike.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import yaml

from demo.monitoring import WATCHED_ALERTS, Monitoring, firing_and_pending, start_monitoring
from demo.pod import (
    BACKPRESSURE,
    DEPLOYMENT,
    inject_pod,
    pod_from_deployment,
    pod_ports,
    run_pod,
)
from demo.processes import DemoError, Process, free_port, wait_http
from demo.summary import Alerts, Snapshot, final_summary, live_line
from demo.traffic import Traffic

LIVE_EVERY_S = 5.0


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds to run, then exit with a summary (0: until Ctrl-C)",
    )
    parser.add_argument(
        "--backpressure",
        type=_flag,
        default=False,
        help="1: throttle the sidecar (ingest-rate limit) so the shop's queues fill and the "
        "queue alerts fire",
    )
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s to the shop")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    return parser  # fmt: skip


class _Stop(Exception):
    """SIGTERM: handled like Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _alerts(monitoring: Monitoring | None) -> Alerts:
    if monitoring is None:
        return Alerts(available=False)
    try:
        firing, pending, received = firing_and_pending(monitoring)
    except (OSError, ValueError, KeyError):
        return Alerts()
    return Alerts(tuple(firing), tuple(pending), len(received), delivered=tuple(received))


class _AlertWatch:
    """Says once each when a watched alert goes pending, fires in Prometheus, reaches
    Alertmanager (``WATCHED_ALERTS``: the queue alerts)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def news(self, alerts: Alerts, elapsed_s: float) -> list[str]:
        lines = []
        for name in WATCHED_ALERTS:
            for where, present in (
                ("pending in Prometheus", name in alerts.pending),
                ("firing in Prometheus", name in alerts.firing),
                ("reached Alertmanager", name in alerts.delivered),
            ):
                if present and (name, where) not in self.seen:
                    self.seen.add((name, where))
                    lines.append(f"[{elapsed_s:5.0f} s] alert {name} {where}")
        return lines


class _Progress:
    """A self-overwriting status line between the live summaries, on a terminal only."""

    def __init__(self, duration_s: float, traffic: Traffic) -> None:
        self.duration_s = duration_s
        self.traffic = traffic
        self.enabled = sys.stdout.isatty()

    def show(self, elapsed_s: float) -> None:
        if not self.enabled:
            return
        sent = self.traffic.total()
        if self.duration_s:
            done = min(1.0, elapsed_s / self.duration_s)
            bar = "#" * int(done * 20)
            where = f"[{bar:<20}] {elapsed_s:4.0f}/{self.duration_s:.0f} s"
        else:
            where = f"{elapsed_s:5.0f} s (Ctrl-C stops)"
        rate = sent / elapsed_s if elapsed_s else 0.0
        sys.stdout.write(f"\r  {where}  {sent} requests sent ({rate:.0f}/s) ")
        sys.stdout.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


def _say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class _Pod:
    process: Process
    sidecar_url: str
    app_url: str
    labels: dict[str, str]  # the target labels a PodMonitor would give its scrapes


def _start_pod(workdir: Path, cleanups: list[Callable[[], None]], *, backpressure: bool) -> _Pod:
    """The sample Deployment's pod, injected by the operator, running and answering."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    pod = pod_from_deployment(deployment, app_port=free_port(8000))
    patched, injected = inject_pod(
        pod, metrics_port=free_port(9464), backpressure=BACKPRESSURE if backpressure else None
    )
    metadata = pod["metadata"]
    (workdir / "pod-before.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))
    spec = patched["spec"]
    where = f"{DEPLOYMENT.parent.name}/{DEPLOYMENT.name}"
    _say(f"operator: {injected} ({where}, pod {metadata['name']})")
    _say("  init containers: " + ", ".join(c["name"] for c in spec.get("initContainers", [])))
    _say("  containers:      " + ", ".join(c["name"] for c in spec["containers"]))
    _say(f"  patched pod:     {workdir / 'pod.yaml'}")

    process = run_pod(patched, workdir)
    cleanups.append(process.stop)
    ports = pod_ports(patched)
    running = _Pod(
        process,
        f"http://127.0.0.1:{ports.metrics}",
        f"http://127.0.0.1:{ports.app}",
        {"namespace": metadata["namespace"], "pod": metadata["name"]},
    )
    wait_http(f"{running.sidecar_url}/readyz", timeout_s=60, process=process, what="the sidecar")
    wait_http(f"{running.app_url}/healthz", timeout_s=60, process=process, what="the shop")
    _say(f"pod running: gunicorn (4 workers) and the sidecar; their output: {process.log_path}")
    return running


def _print_where(
    pod: _Pod, monitoring: Monitoring | None, workdir: Path, duration_s: float
) -> None:
    _say()
    _say("Where to look:")
    _say(f"  shop (the app)       {pod.app_url}/orders")
    _say(f"  sidecar metrics      {pod.sidecar_url}/metrics")
    _say(f"  pod dashboard        {pod.sidecar_url}/_profilis/")
    if monitoring is not None:
        _say(f"  Prometheus alerts    {monitoring.prometheus_url}/alerts")
        _say(f"  Alertmanager         {monitoring.alertmanager_url}/#/alerts")
    _say(f"  logs                 {workdir}")
    _say(f"Running {duration_s:.0f} s." if duration_s else "Ctrl-C stops everything.")
    _say()


def _watch(
    args: argparse.Namespace, pod: _Pod, traffic: Traffic, monitoring: Monitoring | None
) -> None:
    """Live lines until the deadline or Ctrl-C/SIGTERM, then the final summary."""
    start = time.monotonic()
    before = Snapshot.read(pod.sidecar_url)
    next_live = start + LIVE_EVERY_S
    next_alerts = start + 1.0
    watch = _AlertWatch()
    progress = _Progress(args.duration, traffic)
    stopped_by: BaseException | None = None
    try:
        while not args.duration or time.monotonic() - start < args.duration:
            time.sleep(0.5)
            if not pod.process.alive():
                raise DemoError(f"the pod runner exited:\n{pod.process.tail()}")
            if monitoring is not None and time.monotonic() >= next_alerts:
                next_alerts += 1.0
                news = watch.news(_alerts(monitoring), time.monotonic() - start)
                if news:
                    progress.clear()
                    for line in news:
                        _say(line)
            if time.monotonic() >= next_live:
                next_live += LIVE_EVERY_S
                now = Snapshot.read(pod.sidecar_url)
                progress.clear()
                _say(live_line(now, before, time.monotonic() - start, _alerts(monitoring)))
                before = now
            progress.show(time.monotonic() - start)
    except (KeyboardInterrupt, _Stop) as exc:
        # Still worth a summary: the user stopped a demo, not a broken one.
        stopped_by = exc
    progress.clear()
    traffic.stop()
    # The agents flush every 0.1 s: a moment lets the last requests reach /metrics.
    time.sleep(0.5)
    elapsed_s = time.monotonic() - start
    with contextlib.suppress(OSError):
        snapshot = Snapshot.read(pod.sidecar_url)
        _say()
        _say(final_summary(snapshot, elapsed_s, _alerts(monitoring)))
    if stopped_by is not None:
        raise stopped_by


def run(args: argparse.Namespace, workdir: Path, cleanups: list[Callable[[], None]]) -> None:
    pod = _start_pod(workdir, cleanups, backpressure=args.backpressure)
    monitoring: Monitoring | None = None
    started = start_monitoring(
        workdir,
        target=pod.sidecar_url.removeprefix("http://"),
        target_labels=pod.labels,
        short_queue_alerts=args.backpressure,
    )
    if isinstance(started, Monitoring):
        monitoring = started
        cleanups.append(monitoring.stop)
    else:
        _say("Prometheus/Alertmanager: not started, the rest of the demo runs without them.")
        _say(f"  why: {started}")

    traffic = Traffic(pod.app_url, rate_per_s=args.rate)
    traffic.start()
    cleanups.append(traffic.stop)
    if args.backpressure:
        _say(
            f"BACKPRESSURE=1: the sidecar reads at most {BACKPRESSURE.ingest_rate_limit:g} "
            "datagrams/s (PROFILIS_SIDECAR_INGEST_RATE_LIMIT), so the shop workers' queues "
            f"({BACKPRESSURE.queue_size} events, ProfilisConfig collector.queueSize) fill;"
        )
        _say(
            "  the queue alerts' `for:` is 5 s here; the demo says when "
            + " and ".join(WATCHED_ALERTS)
            + " fire in Prometheus and reach Alertmanager"
        )
    _print_where(pod, monitoring, workdir, args.duration)
    _watch(args, pod, traffic, monitoring)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="profilis-demo-"))
    cleanups: list[Callable[[], None]] = []
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Explicitly: a shell that starts the demo in the background would leave SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        run(args, workdir, cleanups)
    except KeyboardInterrupt:
        code = 130
    except _Stop:
        code = 143
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not leave processes behind: cleanup ignores it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        if args.keep or code == 1:
            print(f"demo: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if code != 1:
        _say("demo: everything stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
