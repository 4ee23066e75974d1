"""Runs the bench/app rounds: every variant of every stack, interleaved (ABCD ABCD …), each in
fresh processes, and measures one run as load, CPU per request and the 'variant is on' check.

One run: start the variant's helper (sidecar or receiver) and server, probe it, warm it up,
then read the CPU of all its processes, load it for the measured duration, read the CPU again;
then check that the variant's output holds every request the app answered.

wrk opens its connections all at once and keeps them; a gthread worker can accept every one
of them, leaving the other worker idle and the busy one's threads fighting over its GIL (a
third of the requests at twice the CPU each, seen for every variant, plain included). Such a
load measures the accept race, not the variant: when one worker did less than
``BALANCED_SHARE`` of the workers' CPU, the load is run again on the same processes, up to
``LOAD_ATTEMPTS`` times, and the result says how many it took.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.app.load import USERS, run_load
from bench.app.procs import cpu_seconds, free_port, running, stop, workers
from bench.app.variants import Deployment, Setup, Stack, Variant
from bench.app.venvs import clean_env, ensure_venv

__all__ = ["BALANCED_SHARE", "LOAD_ATTEMPTS", "Options", "RunResult", "make_setup", "run_rounds"]

#: The least share of the workers' CPU each of N workers must do for a load to count, as a
#: fraction of the even share 1/N (0.4: with 2 workers, at least 20% each).
BALANCED_SHARE = 0.4
#: Measured loads per run at most, when the earlier ones were not shared by the workers.
LOAD_ATTEMPTS = 4


@dataclass(frozen=True)
class Options:
    rounds: int
    duration_s: float
    warmup_s: float
    connections: int
    load_tool: str  # "wrk" or "python"


@dataclass(frozen=True)
class RunResult:
    round: int
    stack: str
    variant: str
    ok: bool
    check: str  # "on: …", "n/a" (plain) or why the run failed
    load_tool: str = ""
    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_s: float = 0.0
    cpu_us_per_request: float = 0.0
    #: The part of cpu_us_per_request spent in the helper (sidecar or receiver), 0 without one.
    helper_cpu_us_per_request: float = 0.0
    counted: int | None = None
    expected: int | None = None
    #: Measured loads it took to get one shared by every worker (1: the first one was).
    load_attempts: int = 1
    #: The least-busy worker's share of the workers' CPU in the kept load, over the even share.
    worker_balance: float = 1.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def make_setup(work: Path, variants: Sequence[Variant]) -> Setup:
    """Agent payload, database and venvs, once per harness run."""
    repo_bin = Path(sys.executable).parent
    payload = work / "payload"
    subprocess.run(
        [sys.executable, "-m", "profilis.agent.cli", "install", str(payload)],
        check=True,
        capture_output=True,
    )
    database = work / "bench.db"
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany(
            "INSERT INTO users VALUES (?, ?)", [(n, f"user-{n}") for n in range(1, USERS + 1)]
        )
    venv_bins = {v.venv: ensure_venv(v.venv) for v in variants if v.venv is not None}
    return Setup(repo_bin, payload, database, venv_bins)


def run_rounds(
    stacks: Sequence[Stack],
    variants: Sequence[Variant],
    setup: Setup,
    options: Options,
    work: Path,
    say: Callable[[str], None],
) -> list[RunResult]:
    results = []
    total = options.rounds * len(stacks) * len(variants)
    for round_no in range(1, options.rounds + 1):
        for stack in stacks:
            for variant in variants:
                result = _run_one(round_no, stack, variant, setup, options, work)
                results.append(result)
                say(
                    f"[{len(results)}/{total}] round {round_no} {stack.key:16} {variant.key:10} "
                    + (
                        f"{result.rps:8.0f} req/s  {result.cpu_us_per_request:7.1f} us CPU/req"
                        f"  p99 {result.p99_ms:6.2f} ms  {result.check}"
                        if result.ok
                        else result.check
                        if result.check.startswith("FAILED")
                        else f"FAILED: {result.check}"
                    )
                )
    return results


def _probe(port: int, timeout_s: float = 60.0) -> None:
    """One successful GET / (the app imported and a worker answers)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                page.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _await_count(count: Callable[[], int], expected: int, timeout_s: float) -> int:
    """The variant's count, polled until it reaches ``expected`` or time runs out."""
    deadline = time.monotonic() + timeout_s
    seen = count()
    while seen < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = count()
    return seen


def _run_one(
    round_no: int, stack: Stack, variant: Variant, setup: Setup, options: Options, work: Path
) -> RunResult:
    run = work / f"round{round_no}-{stack.key}-{variant.key}"
    run.mkdir()
    port = free_port()
    env = {**clean_env(), "BENCH_APP_DB": str(setup.database)}
    deployment = variant.deploy(stack, run, setup, port, env)
    try:
        with contextlib.ExitStack() as procs:
            helper_pids = []
            if deployment.helper is not None:
                helper = deployment.helper
                helper_pids.append(
                    procs.enter_context(
                        running(helper.argv, env, run, run / "helper.log", helper.port)
                    ).pid
                )
            server = procs.enter_context(
                running(deployment.argv, deployment.env, run, run / "server.log", port)
            )
            _probe(port)
            warmup = run_load(port, options.warmup_s, options.connections, run, options.load_tool)
            answered = 1 + warmup.requests
            server_workers = workers(server.pid)
            attempt = 0
            while True:
                attempt += 1
                workers_before = [cpu_seconds([pid]) for pid in server_workers]
                cpu_before = cpu_seconds([server.pid]), cpu_seconds(helper_pids)
                load = run_load(
                    port, options.duration_s, options.connections, run, options.load_tool
                )
                server_cpu_s = cpu_seconds([server.pid]) - cpu_before[0]
                helper_cpu_s = cpu_seconds(helper_pids) - cpu_before[1]
                answered += load.requests
                workers_after = [cpu_seconds([pid]) for pid in server_workers]
                balance = worker_balance(
                    [after - was for after, was in zip(workers_after, workers_before, strict=True)]
                )
                if balance >= BALANCED_SHARE or attempt == LOAD_ATTEMPTS:
                    break
            # The warm-up and every load: wrk may leave one request per connection uncounted.
            slack = 0 if load.tool == "python" else (1 + attempt) * options.connections
            check, counted, expected = _check(deployment, server, answered, slack)
    except Exception as exc:  # a failed run is reported in its row; the other runs go on
        log_tail = _tail(run / "server.log")
        return RunResult(
            round_no,
            stack.key,
            variant.key,
            ok=False,
            check=f"{type(exc).__name__}: {exc}{log_tail}",
        )
    return RunResult(
        round_no,
        stack.key,
        variant.key,
        ok=not check.startswith("FAILED"),
        check=check,
        load_tool=load.tool,
        requests=load.requests,
        duration_s=load.duration_s,
        rps=load.rps,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        cpu_s=server_cpu_s + helper_cpu_s,
        cpu_us_per_request=(server_cpu_s + helper_cpu_s) / load.requests * 1e6,
        helper_cpu_us_per_request=helper_cpu_s / load.requests * 1e6,
        counted=counted,
        expected=expected,
        load_attempts=attempt,
        worker_balance=balance,
    )


def worker_balance(worker_cpu_s: Sequence[float]) -> float:
    """The least-busy worker's CPU over the even share (1.0: perfectly even; 0: one idle)."""
    total = sum(worker_cpu_s)
    if len(worker_cpu_s) < 2 or total <= 0:
        return 1.0
    return min(worker_cpu_s) * len(worker_cpu_s) / total


def _check(
    deployment: Deployment, server: subprocess.Popen[bytes], expected: int, slack: int
) -> tuple[str, int | None, int | None]:
    """Whether the variant's output holds every request answered (probe, warm-up, loads):
    ``expected`` of them, and up to ``slack`` more that wrk stopped waiting for."""
    count = deployment.count
    if count is None:
        stop(server)
        return "n/a", None, None
    # First while the server runs (exporters send on their own interval: OpenTelemetry's is
    # 5 s); then, for those that can, after a graceful stop, which makes workers flush.
    counted = _await_count(count, expected, 8.0)
    stop(server)
    if counted < expected and not deployment.count_while_running:
        counted = _await_count(count, expected, 8.0)
    # wrk stops mid-flight: more than the slack, or fewer than answered, is wrong.
    if expected <= counted <= expected + slack:
        return (
            f"on: {counted} of {expected} requests in {deployment.what_counts}",
            counted,
            expected,
        )
    why = ""
    if deployment.diagnose is not None:
        with contextlib.suppress(OSError):
            why = f" ({deployment.diagnose()})"
    return (
        f"FAILED: {deployment.what_counts} holds {counted} requests, the app answered"
        f" {expected}{why}",
        counted,
        expected,
    )


def _tail(log: Path, lines: int = 5) -> str:
    if not log.exists():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return (" | server log: " + " / ".join(tail)) if tail else ""
