"""``python -m bench`` (``make bench``): every case side by side, ratios, JSON record.

Runs the cases of ``bench.registry`` one after another, each in a fresh ``bench.worker``
process (our venv's Python, or the peer venv's from ``bench.peer_env``), then counts the
hot-path rows' instructions under callgrind (``bench.instructions``), prints the table and
ratios of ``bench.report`` and writes ``bench/results/<UTC time>.json`` and ``latest.json``.
Exit status 1 only if a case crashed; a missed target is information.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.instructions import PLANS, CallgrindError, count_instructions, valgrind_missing_reason
from bench.peer_env import PEER_REQUIREMENT, PeerEnvError, clean_env, ensure_peer_python
from bench.registry import Case, Settings, select_cases
from bench.report import evaluate, render, write_json
from bench.worker import RESULT_MARKER

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = REPO_ROOT / ".bench" / "peer-venv"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
#: A case that takes longer than this has hung (a writer that never drains, say).
CASE_TIMEOUT_S = 180.0


def _run_worker(python: Path | str, case: Case, settings: Settings) -> dict[str, object]:
    command = [str(python), "-m", "bench.worker", case.name]
    if settings.quick:
        command.append("--quick")
    try:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CASE_TIMEOUT_S:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, object] = json.loads(line[len(RESULT_MARKER) :])
            return result
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exit {done.returncode}: {tail}", "stderr": done.stderr[-4000:]}


def _our_version() -> str | None:
    try:
        from profilis import __version__
    except Exception:  # the report must still come out if our package is broken
        return None
    return __version__


def _header(settings: Settings, started: dt.datetime) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mode = "quick" if settings.quick else "full"
    return (
        f"Profilis bench ({mode}) {started:%Y-%m-%d %H:%M:%S}Z | "
        f"CPython {platform.python_version()} {platform.machine()} | {cpus} CPUs | "
        f"median of {settings.repeat} reps (drain: {settings.drain_repeat}) | "
        f"ours {_our_version()} vs {PEER_REQUIREMENT}"
    )


def _failed(outcome: dict[str, object]) -> bool:
    counted = outcome.get("instructions")
    return "error" in outcome or (isinstance(counted, dict) and "error" in counted)


def _count_rows(
    cases: Sequence[Case],
    pythons: dict[str, Path | str],
    peer_error: str | None,
    settings: Settings,
    pairs: int,
    outcomes: dict[str, dict[str, object]],
) -> None:
    """Instruction counts into ``outcomes[case]["instructions"]`` (one callgrind pair at a
    time: the two runs of a pair share the two cores; their counts ignore the load)."""
    for index, case in enumerate(cases, 1):
        print(
            f"bench: instructions [{index}/{len(cases)}] {case.name}", file=sys.stderr, flush=True
        )
        python = pythons.get(case.interpreter)
        clock = time.monotonic()
        counted: dict[str, object]
        if python is None:
            counted = {"error": peer_error or f"no {case.interpreter} interpreter"}
        else:
            try:
                counted = count_instructions(
                    python, case.name, quick=settings.quick, pairs=pairs, env=clean_env()
                )
            except (CallgrindError, subprocess.SubprocessError, OSError) as exc:
                counted = {"error": str(exc)}
        counted["wall_s"] = round(time.monotonic() - clock, 2)
        outcomes[case.name]["instructions"] = counted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--only", help="comma list of case names (globs allowed)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    counting = parser.add_mutually_exclusive_group()
    counting.add_argument(
        "--instructions-only",
        action="store_true",
        help="only the callgrind instruction counts (hot-path rows), no wall-clock rows",
    )
    counting.add_argument(
        "--no-instructions", action="store_true", help="only the wall-clock rows, no callgrind"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="callgrind (op, bare) pairs per instruction row (default 3, quick 2)",
    )
    args = parser.parse_args(argv)

    try:
        cases = select_cases(args.only.split(",") if args.only else None)
    except ValueError as exc:
        parser.error(str(exc))
    if args.list:
        for case in cases:
            counted = " [instr]" if case.name in PLANS else ""
            print(f"{case.name:<20} {case.interpreter:<5} {case.label}{counted}")
        return 0
    counted_cases = [] if args.no_instructions else [c for c in cases if c.name in PLANS]
    wall_cases = [] if args.instructions_only else cases

    settings = Settings.for_mode(args.quick)
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    pythons: dict[str, Path | str] = {"ours": sys.executable}
    peer_error: str | None = None
    if any(case.interpreter == "peer" for case in [*wall_cases, *counted_cases]):
        try:
            pythons["peer"] = ensure_peer_python(PEER_VENV)
        except PeerEnvError as exc:
            peer_error = f"peer venv: {exc}"

    outcomes: dict[str, dict[str, object]] = {case.name: {} for case in cases}
    # Strictly one after another: each case's collector writer needs the second core.
    for index, case in enumerate(wall_cases, 1):
        print(f"bench: [{index}/{len(wall_cases)}] {case.name}", file=sys.stderr, flush=True)
        python = pythons.get(case.interpreter)
        clock = time.monotonic()
        if python is None:
            outcomes[case.name] = {"error": peer_error or f"no {case.interpreter} interpreter"}
        else:
            outcomes[case.name] = _run_worker(python, case, settings)
        outcomes[case.name]["wall_s"] = round(time.monotonic() - clock, 2)

    skipped = valgrind_missing_reason() if counted_cases else None
    if skipped is not None:
        print(f"bench: instruction rows skipped: {skipped}", file=sys.stderr, flush=True)
    else:
        pairs = args.pairs or (2 if settings.quick else 3)
        _count_rows(counted_cases, pythons, peer_error, settings, pairs, outcomes)

    print(render(cases, outcomes, _header(settings, started), skipped))
    record = {
        "meta": {
            "started_utc": f"{started.isoformat()}Z",
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "ours": _our_version(),
            "peer": PEER_REQUIREMENT,
        },
        "settings": asdict(settings),
        "cases": {
            case.name: {"label": case.label, "interpreter": case.interpreter, **outcomes[case.name]}
            for case in cases
        },
        "checks": [check.as_dict() for check in evaluate(outcomes)],
    }
    paths = write_json(record, args.results_dir, f"{started:%Y%m%dT%H%M%SZ}")
    shown = [p.relative_to(REPO_ROOT) if p.is_relative_to(REPO_ROOT) else p for p in paths]
    print(f"\nresults: {', '.join(map(str, shown))}")
    failed = [name for name, outcome in outcomes.items() if _failed(outcome)]
    if failed:
        print(f"bench: failed: {', '.join(failed)} (details in the JSON)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
