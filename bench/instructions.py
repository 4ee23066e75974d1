"""Instruction counts per operation for the hot-path rows, from callgrind: load-proof figures.

Wall-clock rows move with whatever else the machine runs; the number of instructions the
same code executes does not. For each row with a subject in ``bench.subjects``, the parent
(``count_instructions``) starts ``valgrind --tool=callgrind`` twice, in fresh processes and
side by side: ``python -m bench.instructions CASE op N WARMUP`` and the same with ``bare``.
Both build the row, warm up both loops identically, then run one of them ``N`` times and
exit at once, so (Ir(op) - Ir(bare)) / N is the operation alone. ``bench.__main__`` calls it.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

__all__ = [
    "PLANS",
    "CallgrindError",
    "Plan",
    "count_instructions",
    "main",
    "read_main_thread_ir",
    "valgrind_missing_reason",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: One callgrind run; Python runs ~50x slower under it, and Flask imports take seconds.
RUN_TIMEOUT_S = 300.0
#: The counting process never hands the GIL over on its own, so the collector's writer (or
#: OTel's worker) cannot run in the middle of the loop at moments that depend on the load.
SWITCH_INTERVAL_S = 1e4


class CallgrindError(Exception):
    """A callgrind run failed or left no readable counts."""


@dataclass(frozen=True)
class Plan:
    """How many operations one counting run performs, after ``warmup`` of each loop.

    Queue-backed rows keep ``n + warmup`` events below the queue size (65,536): the writer
    never runs while counting, so more would time the drop path instead.
    """

    n: int
    warmup: int

    def scaled(self, quick: bool) -> Plan:
        return Plan(max(self.n // 10, 100), max(self.warmup // 10, 20)) if quick else self


_EMIT = Plan(40_000, 1_000)
_REQUEST = Plan(2_000, 100)
#: Case name -> plan. Every name has a subject in ``bench.subjects``.
PLANS: dict[str, Plan] = {
    "floor": _EMIT,
    "ours_emit_http": _EMIT,
    "ours_emit_fn": _EMIT,
    "ours_emit_db": _EMIT,
    "peer_emit_req": _EMIT,
    "otel_span": Plan(20_000, 1_000),
    "prometheus_observe": _EMIT,
    "ours_decorator": _EMIT,
    # 1.0.0 queues two events per call.
    "peer_decorator": Plan(20_000, 1_000),
    "handrolled_decorator": _EMIT,
    "flask_hooks": _REQUEST,
    "flask_ours": _REQUEST,
    "flask_peer": _REQUEST,
    "asgi_ours": _REQUEST,
    "asgi_peer": _REQUEST,
    "asgi_timing": _REQUEST,
}


def valgrind_missing_reason() -> str | None:
    """Why the instruction rows cannot run here, or None when valgrind is on PATH."""
    if shutil.which("valgrind") is None:
        return (
            "valgrind is not on PATH (`make bench` installs it with scripts/install-valgrind.sh,"
            " which needs root and apt-get)"
        )
    return None


def read_main_thread_ir(out_file: Path) -> tuple[int, int]:
    """(main thread, all threads) instruction totals of a ``--separate-threads=yes`` run.

    Callgrind writes ``OUT-01`` for the main thread, ``OUT-02``... for the others; only the
    main thread's count is the caller's cost, the rest depends on when threads got to run.
    """
    totals: dict[int, int] = {}
    for path in sorted(out_file.parent.glob(f"{out_file.name}-*")):
        thread = int(path.name.rsplit("-", 1)[1])
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                totals[thread] = int(line.split()[1])
                break
    if 1 not in totals:
        raise CallgrindError(f"no main-thread totals in {out_file}-01")
    return totals[1], sum(totals.values())


def _command(python: Path | str, case: str, variant: str, plan: Plan, out: Path) -> list[str]:
    worker = [str(python), "-m", "bench.instructions", case, variant, str(plan.n)]
    valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "-q"]
    return [*valgrind, f"--callgrind-out-file={out}", *worker, str(plan.warmup)]


def _finish(process: subprocess.Popen[str], what: str) -> None:
    try:
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise CallgrindError(f"{what}: timed out after {RUN_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise CallgrindError(f"{what}: exit {process.returncode}: {tail}")


def _count_pair(
    python: Path | str, case: str, plan: Plan, env: Mapping[str, str], workdir: Path
) -> dict[str, int]:
    """One op run and one bare run, side by side (their counts do not depend on the load)."""
    processes = {}
    for variant in ("op", "bare"):
        out = workdir / f"{case}.{variant}.out"
        for stale in workdir.glob(f"{out.name}*"):
            stale.unlink()
        processes[variant] = subprocess.Popen(
            _command(python, case, variant, plan, out),
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        for variant, process in processes.items():
            _finish(process, f"{case} {variant}")
    finally:
        for process in processes.values():
            if process.poll() is None:  # its twin failed: no use counting on
                process.kill()
                process.communicate()
    counts = {}
    for variant in ("op", "bare"):
        main, everything = read_main_thread_ir(workdir / f"{case}.{variant}.out")
        counts[variant], counts[f"{variant}_all_threads"] = main, everything
    return counts


def count_instructions(
    python: Path | str, case: str, *, quick: bool, pairs: int, env: Mapping[str, str]
) -> dict[str, object]:
    """The row's instructions per operation: the median of ``pairs`` (op, bare) pairs."""
    plan = PLANS[case].scaled(quick)
    with tempfile.TemporaryDirectory(prefix="profilis-callgrind-") as tmp:
        workdir = Path(tmp)
        # A private bytecode cache, written by one uncounted run and only read by the counted
        # ones: no run compiles what its twin read from a cache that others may rewrite.
        env = {**env, "PYTHONHASHSEED": "0", "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        prime = [str(python), "-m", "bench.instructions", case, "op", "0", "1"]
        done = subprocess.run(
            prime, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CallgrindError(f"{case}: uncounted run exit {done.returncode}: {tail}")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        runs = [_count_pair(python, case, plan, env, workdir) for _ in range(pairs)]
    per_op = [(run["op"] - run["bare"]) / plan.n for run in runs]
    median = statistics.median(per_op)
    spread = (max(per_op) - min(per_op)) / abs(median) * 100 if median else 0.0
    return {
        "value": median,
        "unit": "instr/op",
        "reps": per_op,
        "info": {
            "n": plan.n,
            "warmup": plan.warmup,
            "spread_pct": spread,
            "ir": runs,
            "counted": "main thread (callgrind --separate-threads=yes)",
        },
    }


def _count_here(case: str, variant: str, n: int, warmup: int) -> NoReturn:
    """The counted process: build the row, warm both loops, run one of them, leave at once."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    from bench.subjects import SUBJECTS

    subject = SUBJECTS[case]()
    subject.op(warmup)
    subject.bare(warmup)
    gc.collect()
    (subject.op if variant == "op" else subject.bare)(n)
    sys.stdout.flush()
    sys.stderr.flush()
    # No teardown: closing a collector with n events queued would cost more than with 0.
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4 or args[1] not in {"op", "bare"}:
        print("usage: python -m bench.instructions CASE op|bare N WARMUP", file=sys.stderr)
        return 2
    _count_here(args[0], args[1], int(args[2]), int(args[3]))


if __name__ == "__main__":
    sys.exit(main())
