"""``python -m profilis_sidecar.loadgen``: N real agent processes that send known events.

Each agent is its own Python process (this module again, with ``--agent``) running the real
agent path: ``Emitter`` -> ``AsyncCollector`` -> ``CollectorExporter`` (``--mode emitter``),
or the exporter alone fed ready-made batches (``--mode exporter``: little agent cost, to
find what the sidecar takes). Each sends ``--events`` at ``--rate`` events/s (0: flat out)
and reports its own counts; the parent prints one JSON summary: emitted, sent, dropped by
reason, unaccounted (always 0 unless something is wrong) and the send cost per batch.
Used by the sidecar tests, ``make bench`` and the demo.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.exporters.collector import CollectorExporter

__all__ = ["main", "run_agents", "summarize"]

ROUTES = tuple(f"/load/{{id}}/{n}" for n in range(64))
# Durations spread over the histogram buckets (1 ms to 3 s).
DURATIONS_NS = tuple(int(1e6 * 1.7**n) for n in range(16))
# Options forwarded from the parent to every agent, as (flag, attribute).
_AGENT_OPTIONS = (
    ("--address", "address"),
    ("--events", "events"),
    ("--rate", "rate"),
    ("--mode", "mode"),
    ("--mix", "mix"),
    ("--routes", "routes"),
    ("--service", "service"),
    ("--queue-size", "queue_size"),
    ("--batch-max", "batch_max"),
    ("--flush-interval", "flush_interval"),
    ("--reconnect-interval", "reconnect_interval"),
    ("--heartbeat-interval", "heartbeat_interval"),
    ("--close-timeout", "close_timeout"),
    ("--max-datagram-bytes", "max_datagram_bytes"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m profilis_sidecar.loadgen",
        description="Start agent processes that send known events to a Profilis sidecar.",
    )
    parser.add_argument("--address", required=True, help="unix:///path or udp://host:port")
    parser.add_argument("--agents", type=int, default=4, help="agent processes (default 4)")
    parser.add_argument("--events", type=int, default=100_000, help="events per agent")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s per agent; 0: flat out")
    parser.add_argument("--mode", choices=["emitter", "exporter"], default="emitter")
    parser.add_argument("--mix", choices=["http", "all"], default="http", help="event kinds")
    parser.add_argument("--routes", type=int, default=8, help="distinct routes (max 64)")
    parser.add_argument("--service", default="loadgen")
    parser.add_argument("--queue-size", type=int, default=8192)
    parser.add_argument("--batch-max", type=int, default=128)
    parser.add_argument("--flush-interval", type=float, default=0.05)
    parser.add_argument("--reconnect-interval", type=float, default=0.5)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--close-timeout", type=float, default=2.0)
    parser.add_argument("--max-datagram-bytes", type=int, default=60_000)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------- one agent


class _SendTimes:
    """How long each exporter call took (one per batch), in wall and thread CPU time."""

    def __init__(self) -> None:
        self.wall_ns: list[int] = []
        self.cpu_ns: list[int] = []

    def time(
        self,
        send: Callable[[Sequence[Mapping[str, Any]]], None],
        batch: Sequence[Mapping[str, Any]],
    ) -> None:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        send(batch)
        self.cpu_ns.append(time.thread_time_ns() - cpu)
        self.wall_ns.append(time.perf_counter_ns() - wall)

    def report(self) -> dict[str, int]:
        wall, cpu = self.wall_ns, self.cpu_ns
        return {
            "batches": len(wall),
            "total_ns": sum(wall),
            # Medians: the cost of a send; a mean also carries the odd preemption.
            "p50_ns": int(statistics.median(wall)) if wall else 0,
            # CPU time is the work itself; wall time adds waiting for a core (wake-ups).
            "cpu_p50_ns": int(statistics.median(cpu)) if cpu else 0,
            "max_ns": max(wall, default=0),
        }


class _TimedSink:
    """Wraps the exporter to time each batch send, as the collector's writer sees it."""

    name = "collector"

    def __init__(self, exporter: CollectorExporter, times: _SendTimes) -> None:
        self.exporter = exporter
        self.times = times

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        self.times.time(self.exporter, batch)

    def close(self) -> None:
        self.exporter.close()


def _paced(total: int, rate: float, chunk: int) -> Iterator[tuple[int, int]]:
    """(first index, count) chunks of ``total``, sleeping as needed to hold ``rate``."""
    start = time.perf_counter()
    done = 0
    while done < total:
        count = min(chunk, total - done)
        yield done, count
        done += count
        if rate > 0:
            ahead = start + done / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)


def _by_kind(events: int, mix: str) -> dict[str, int]:
    if mix == "http":
        return {"HTTP": events, "FN": 0, "DB": 0}
    # Kind of event i is i % 3: HTTP, FN, DB.
    return {kind: (events - k + 2) // 3 for k, kind in enumerate(("HTTP", "FN", "DB"))}


def _emit(emitter: Emitter, first: int, count: int, routes: int, mix_all: bool) -> None:
    emit_http, emit_fn, emit_db = emitter.emit_http, emitter.emit_fn, emitter.emit_db
    for i in range(first, first + count):
        dur = DURATIONS_NS[i % 16]
        kind = i % 3 if mix_all else 0
        if kind == 0:
            status = 500 if i % 10 == 9 else 200
            emit_http(ROUTES[i % routes], status, dur, "GET" if i & 1 else "POST")
        elif kind == 1:
            emit_fn(f"loadgen.work_{i % routes}", dur)
        else:
            emit_db("SELECT * FROM t WHERE id = ?", dur, rows=1, db_vendor="sqlite")


def _exporter(args: argparse.Namespace) -> CollectorExporter:
    return CollectorExporter(
        args.address,
        service=args.service,
        max_datagram_bytes=args.max_datagram_bytes,
        reconnect_interval_s=args.reconnect_interval,
        heartbeat_interval_s=args.heartbeat_interval,
        close_timeout_s=args.close_timeout,
    )


def run_agent(args: argparse.Namespace) -> dict[str, object]:
    """One agent's run; its counts add up: emitted = sent + every drop."""
    exporter = _exporter(args)
    started = time.perf_counter()
    dropped: dict[str, int] = {}
    times = _SendTimes()
    if args.mode == "emitter":
        timed = _TimedSink(exporter, times)
        collector: AsyncCollector[dict[str, Any]] = AsyncCollector(
            timed,
            queue_size=args.queue_size,
            batch_max=args.batch_max,
            flush_interval=args.flush_interval,
            name="loadgen-collector",
        )
        exporter.attach(collector)
        emitter = Emitter(collector)
        mix_all = args.mix == "all"
        for first, count in _paced(args.events, args.rate, 100):
            _emit(emitter, first, count, args.routes, mix_all)
        emitted_s = time.perf_counter() - started
        collector.close(timeout=args.close_timeout + 10.0)
        health = collector.health()
        dropped = {k: v for k, v in health.dropped.items() if k != "export" or v}
    else:
        batch = [
            {
                "kind": "HTTP",
                "ts_ns": time.time_ns(),
                "dur_ns": DURATIONS_NS[i % 16],
                "method": "GET",
                "route": ROUTES[i % args.routes],
                "status": 200,
            }
            for i in range(args.batch_max)
        ]
        for _, count in _paced(args.events, args.rate, args.batch_max):
            times.time(exporter, batch[:count] if count < len(batch) else batch)
        emitted_s = time.perf_counter() - started
        exporter.close()
    stats = exporter.stats()
    dropped["transport"] = stats.dropped_transport
    return {
        "index": args.index,
        "pid": os.getpid(),
        "emitted": args.events,
        "by_kind": _by_kind(args.events, args.mix),
        "sent": stats.sent_events,
        "datagrams": stats.sent_datagrams,
        "connects": stats.connects,
        "dropped": dropped,
        "emit_s": round(emitted_s, 4),
        "elapsed_s": round(time.perf_counter() - started, 4),
        "send": times.report(),
    }


# --------------------------------------------------------------------------- the parent


def run_agents(args: argparse.Namespace) -> list[dict[str, object]]:
    """Start ``args.agents`` agent processes at once and collect their reports."""
    command = [sys.executable, "-m", "profilis_sidecar.loadgen", "--agent"]
    for flag, attribute in _AGENT_OPTIONS:
        command += [flag, str(getattr(args, attribute))]
    processes = [
        subprocess.Popen([*command, "--index", str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(args.agents)
    ]
    deadline = time.monotonic() + args.timeout
    reports: list[dict[str, object]] = []
    try:
        for index, process in enumerate(processes):
            remaining = max(0.1, deadline - time.monotonic())
            out, _ = process.communicate(timeout=remaining)
            lines = out.strip().splitlines()
            if process.returncode != 0 or not lines:
                reports.append({"index": index, "error": f"exit {process.returncode}"})
                continue
            reports.append(json.loads(lines[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return reports


def summarize(
    args: argparse.Namespace, reports: list[dict[str, Any]], elapsed_s: float
) -> dict[str, object]:
    """Totals over agents, with the accounting check: ``unaccounted`` must be 0."""
    good = [r for r in reports if "error" not in r]
    dropped: dict[str, int] = {}
    by_kind = dict.fromkeys(("HTTP", "FN", "DB"), 0)
    for report in good:
        for reason, count in report["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
        for kind, count in report["by_kind"].items():
            by_kind[kind] += count
    emitted = sum(r["emitted"] for r in good)
    sent = sum(r["sent"] for r in good)
    batches = sum(r["send"]["batches"] for r in good)
    send_ns = sum(r["send"]["total_ns"] for r in good)
    return {
        "agents": args.agents,
        "failed_agents": len(reports) - len(good),
        "mode": args.mode,
        "events_per_agent": args.events,
        "rate_per_agent": args.rate,
        "emitted": emitted,
        "by_kind": by_kind,
        "sent": sent,
        "dropped": dropped,
        "unaccounted": emitted - sent - sum(dropped.values()),
        "elapsed_s": round(elapsed_s, 4),
        "send_ns_per_batch": round(send_ns / batches) if batches else None,
        "send_ns_p50": statistics.median([r["send"]["p50_ns"] for r in good]) if good else None,
        "send_cpu_ns_p50": (
            statistics.median([r["send"]["cpu_p50_ns"] for r in good]) if good else None
        ),
        "send_ns_max": max((r["send"]["max_ns"] for r in good), default=None),
        "per_agent": good,
    }


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.routes <= len(ROUTES):
        raise SystemExit(f"--routes must be in [1, {len(ROUTES)}]")
    if args.agent:
        print(json.dumps(run_agent(args)), flush=True)
        return 0
    # SIGTERM unwinds like Ctrl-C, so run_agents stops the agents rather than orphan them.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    started = time.perf_counter()
    reports = run_agents(args)
    summary = summarize(args, reports, time.perf_counter() - started)
    print(json.dumps(summary), flush=True)
    return 1 if summary["failed_agents"] else 0


if __name__ == "__main__":
    sys.exit(main())
