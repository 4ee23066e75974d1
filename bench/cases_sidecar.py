"""Sidecar rows: what one sidecar core ingests from 4 agent processes, and an agent's send cost.

Run in our venv by ``bench.worker``. Each row starts the real sidecar (``python -m
profilis_sidecar``) and real agents (``python -m profilis_sidecar.loadgen --mode exporter``:
the exporter fed ready-made 128-event batches, so the agents are cheap and the sidecar is
what is measured). With two or more CPUs the sidecar is pinned to the first and the agents
to the rest, so "one core" means one core. The ingest rate is read from the sidecar's own
counters (/_profilis) over the steady middle of the run; the loss accounting compares them
with what the agents counted: every event is received or counted as dropped, exactly.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.registry import CaseResult, Settings

__all__ = ["agent_send", "ingest_capacity", "ingest_paced"]

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS = 4
BATCH = 128
#: Offered load of the paced row: above the 500,000 events/s target, so a PASS means the
#: target was met with no drop.
PACED_RATE_PER_AGENT = 150_000
#: Offered load of the capacity row: more than one core can take, held for seconds.
FLOOD_RATE_PER_AGENT = 400_000
POLL_S = 0.1


#: The CPUs this worker may use, read once: each run pins this process, and must not
#: narrow what the next run sees.
_AVAILABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _cpus() -> tuple[set[int], set[int]]:
    """(the sidecar's CPUs, the agents' CPUs); both all CPUs on a one-CPU machine."""
    if len(_AVAILABLE) < 2:
        return set(_AVAILABLE), set(_AVAILABLE)
    return {_AVAILABLE[0]}, set(_AVAILABLE[1:])


def _pin(cpus: set[int]) -> Callable[[], None] | None:
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/_profilis/status.json", timeout=5
    ) as response:
        result: dict[str, Any] = json.load(response)
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(events_per_agent: int, rate_per_agent: float, agents: int = AGENTS) -> dict[str, Any]:
    """One sidecar, one load run; the sidecar's steady rate and the full accounting."""
    sidecar_cpus, agent_cpus = _cpus()
    pin_agents = _pin(agent_cpus)
    if pin_agents is not None:
        pin_agents()  # this process polls: keep it off the sidecar's core too
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="pfb-", dir="/tmp") as tmp:
        address = f"unix://{tmp}/c.sock"
        sidecar = subprocess.Popen(
            [
                *(sys.executable, "-m", "profilis_sidecar", "--listen", address),
                *("--metrics-host", "127.0.0.1", "--metrics-port", str(port)),
                *("--log-interval", "3600", "--log-level", "WARNING"),
            ],
            cwd=REPO_ROOT,
            preexec_fn=_pin(sidecar_cpus),
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    _status(port)
                    break
                except OSError:
                    if time.monotonic() > deadline or sidecar.poll() is not None:
                        raise RuntimeError("the sidecar did not start") from None
                    time.sleep(0.05)
            load = subprocess.Popen(
                [
                    *(sys.executable, "-m", "profilis_sidecar.loadgen", "--address", address),
                    *("--agents", str(agents), "--events", str(events_per_agent)),
                    *("--rate", str(rate_per_agent), "--mode", "exporter"),
                    *("--batch-max", str(BATCH), "--timeout", "150"),
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            samples: list[tuple[float, int, float]] = []
            while load.poll() is None:
                status = _status(port)
                samples.append(
                    (
                        time.monotonic(),
                        status["counters"]["events_received"],
                        status["sidecar"]["cpu_s"],
                    )
                )
                time.sleep(POLL_S)
            out, _ = load.communicate()
            summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            # The agents' last envelopes may still be queued: wait until the sidecar has them.
            deadline = time.monotonic() + 10
            final = _status(port)
            while (
                final["counters"]["events_exported"] < summary["sent"]
                and time.monotonic() < deadline
            ):
                time.sleep(POLL_S)
                final = _status(port)
        finally:
            sidecar.terminate()
            sidecar.wait(10)
            restore = _pin(set(_AVAILABLE))
            if restore is not None:
                restore()
    counters = final["counters"]
    # The steady middle: leave out the ramp up and the agents' ramp down.
    moving = [s for s in samples if s[1] > 0]
    middle = moving[1:-1] if len(moving) >= 4 else moving
    (t0, r0, c0), (t1, r1, c1) = middle[0], middle[-1]
    rate = (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0
    dropped = {reason: int(n) for reason, n in summary["dropped"].items() if n}
    return {
        "events": summary["emitted"],
        "sent": summary["sent"],
        "received": counters["events_received"],
        "dropped": dropped,
        "sidecar_dropped": {k: v for k, v in counters["dropped"].items() if v},
        # Events neither received nor counted as dropped by the sidecar: must be 0.
        "unaccounted": summary["emitted"]
        - counters["events_received"]
        - sum(counters["dropped"].values()),
        "rate": rate,
        "events_per_cpu_s": (r1 - r0) / (c1 - c0) if c1 > c0 else None,
        "sidecar_cpu_share": (c1 - c0) / (t1 - t0) if t1 > t0 else None,
        "send_ns_per_batch": summary["send_ns_per_batch"],
        "send_ns_p50": summary["send_ns_p50"],
        "send_cpu_ns_p50": summary["send_cpu_ns_p50"],
        "pinned": {"sidecar": sorted(sidecar_cpus), "agents": sorted(agent_cpus)},
    }


def _repeat(settings: Settings, events_per_agent: int, rate: float) -> list[dict[str, Any]]:
    events = max(
        50_000, int(events_per_agent * settings.drain_scale * (3 if settings.quick else 1))
    )
    return [_run(events, rate) for _ in range(settings.drain_repeat)]


def ingest_capacity(settings: Settings) -> CaseResult:
    """Agents offer more than the sidecar's core can take: the rate is its capacity."""
    runs = _repeat(settings, 2_000_000, FLOOD_RATE_PER_AGENT)
    rates = [run["rate"] for run in runs]
    transport = sum(run["dropped"].get("transport", 0) for run in runs)
    return CaseResult(
        statistics.median(rates),
        "events/s",
        rates,
        {
            "events": sum(run["events"] for run in runs),
            # Shed by the agents when the sidecar's socket queue was full, counted by them
            # and reported by the sidecar: expected at this load, not lost.
            "dropped": {"transport": transport},
            "unaccounted": sum(run["unaccounted"] for run in runs),
            "events_per_cpu_s": [run["events_per_cpu_s"] for run in runs],
            "runs": runs,
        },
    )


def ingest_paced(settings: Settings) -> CaseResult:
    """Agents offer 600,000 events/s in total: all of it should arrive, nothing dropped."""
    runs = _repeat(settings, 600_000, PACED_RATE_PER_AGENT)
    rates = [run["rate"] for run in runs]
    return CaseResult(
        statistics.median(rates),
        "events/s",
        rates,
        {
            "events": sum(run["events"] for run in runs),
            "dropped": sum(sum(run["dropped"].values()) for run in runs),
            "undelivered": sum(run["unaccounted"] for run in runs),
            "offered_per_s": AGENTS * PACED_RATE_PER_AGENT,
            "events_per_cpu_s": [run["events_per_cpu_s"] for run in runs],
            "runs": runs,
        },
    )


def agent_send(settings: Settings) -> CaseResult:
    """One agent's CollectorExporter call for a 128-event batch: encode, split, send (CPU).

    At 500 batches/s, a busy worker's pace: each call finds its thread idle since the last,
    so this is the cost with cold caches (back-to-back calls take about a third of it).
    """
    # One agent at a modest rate: the socket never fills, so every call is a real send.
    events = 64_000 if settings.quick else 256_000
    runs = [_run(events, 64_000.0, agents=1) for _ in range(settings.drain_repeat)]
    # The writer thread's CPU time per call; wall time (in info) also has the wake-ups.
    costs = [float(run["send_cpu_ns_p50"]) for run in runs]
    return CaseResult(
        statistics.median(costs),
        "ns/op",
        costs,
        {
            "events_per_call": BATCH,
            "wall_p50_ns": [run["send_ns_p50"] for run in runs],
            "wall_mean_ns": [run["send_ns_per_batch"] for run in runs],
            "dropped": sum(sum(run["dropped"].values()) for run in runs),
            "runs": runs,
        },
    )
