"""``python -m demo`` (what ``make demo`` runs): start the pipeline, show it, stop it cleanly.

Order: inject and run the pod (``demo.pod``), wait for the sidecar and gunicorn, start
Prometheus/Alertmanager if they can run (``demo.monitoring``), drive traffic
(``demo.traffic``), print a live line every few seconds and a final summary
(``demo.summary``), and say when the queue alerts fire in Prometheus and reach Alertmanager.
``--backpressure`` throttles the pod's real sidecar (``demo.pod.Backpressure``: an
ingest-rate limit, and a small agent queue through the pod's ProfilisConfig), so the shop
workers' queues fill and ProfilisQueueFilling, then ProfilisQueueSaturated fire. Everything
started is stopped in reverse order, on the deadline, on Ctrl-C or SIGTERM alike. Ctrl-C is
the documented way to end an open-ended demo, so it exits 0 (``demo.terminal`` keeps make
out of it); the logs stay in ``build/demo-logs/`` and their folder is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import yaml

from demo.monitoring import (
    WATCHED_ALERTS,
    Monitoring,
    Page,
    firing_and_pending,
    monitoring_pages,
    start_monitoring,
)
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
from demo.terminal import foreground_group
from demo.traffic import Traffic

LIVE_EVERY_S = 5.0
#: Where each run's logs (pod, Prometheus, Alertmanager) and configs are kept.
LOGS_ROOT = Path(__file__).resolve().parents[1] / "build" / "demo-logs"
_FLAGS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False, "": False}  # fmt: skip


def _duration(text: str) -> int:
    """``DURATION``: whole seconds, 0 (or empty) for "until Ctrl-C"."""
    value = text.strip()
    if value and not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(
            f"DURATION={text!r} is not a duration: give whole seconds, 0 or more "
            "(0, the default, runs until Ctrl-C), e.g. DURATION=60"
        )
    return int(value or "0")


def _flag(text: str) -> bool:
    """``BACKPRESSURE``: on or off, spelled in any of the usual ways."""
    try:
        return _FLAGS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"BACKPRESSURE={text!r} is neither on nor off: give 1 (also true, yes, on) or "
            "0 (also false, no, off; the default)"
        ) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names what the user typed (DURATION=...), not argparse's --duration.
        reason = re.sub(r"^argument --[\w-]+: ", "", message)
        self.exit(2, f"{self.prog}: {reason}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=_duration,
        default=0,
        help="whole seconds to run, then exit with a summary (0: until Ctrl-C)",
    )
    parser.add_argument(
        "--backpressure",
        type=_flag,
        default=False,
        help="1: throttle the sidecar (ingest-rate limit) so the shop's queues fill and the "
        "queue alerts fire; 0: off",
    )
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s to the shop")
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help=f"the folder for this run's logs (default: a new one under {LOGS_ROOT})",
    )
    return parser


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
    pages = [
        Page("shop (the app)", f"{pod.app_url}/orders"),
        Page("sidecar metrics", f"{pod.sidecar_url}/metrics"),
        Page("pod dashboard", f"{pod.sidecar_url}/_profilis/"),
    ]
    if monitoring is not None:
        pages += monitoring_pages(monitoring)
    _say()
    _say("Where to look:")
    for page in pages:
        _say(f"  {page.label:<20} {page.url}" + (f"  ({page.note})" if page.note else ""))
    _say(f"  {'logs':<20} {workdir}")
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


def _logs_folder(chosen: Path | None) -> Path:
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen.resolve()
    LOGS_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=LOGS_ROOT))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = _logs_folder(args.logs)
    cleanups: list[Callable[[], None]] = []
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Explicitly: a shell that starts the demo in the background would leave SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    with foreground_group():
        try:
            run(args, workdir, cleanups)
        except KeyboardInterrupt:
            code = 0  # Ctrl-C: how an open-ended demo is meant to end
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
    if code != 1:
        _say("demo: everything stopped.")
    _say(f"demo: logs kept in {workdir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
