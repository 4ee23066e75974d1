"""``python -m bench.app`` (``make bench-app``): the whole-app comparison of issue 19.

Writes bench/results/app/<UTC stamp>.json, latest.json, latest.md and overhead.png (git-ignored
scratch); with ``--publish DIR`` a full run (every stack and variant, >= 5 rounds) is also
copied to DIR as results.json, results.md and overhead.png, the copy the README links.
Exit status: 0 every run passed its checks, 1 a run failed (its row says why), 2 bad options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.app.load import wrk_available
from bench.app.report import markdown, summarise
from bench.app.runner import Options, make_setup, run_rounds
from bench.app.variants import STACKS, VARIANTS
from bench.app.venvs import ensure_venv

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "app"
MIN_PUBLISHED_ROUNDS = 5


def _choose(text: str, known: Sequence[str], what: str) -> list[str]:
    chosen = [each.strip() for each in text.split(",") if each.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"bench-app: unknown {what} {unknown}; choose from {', '.join(known)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.app", description=__doc__)
    stacks, variants = ",".join(s.key for s in STACKS), ",".join(v.key for v in VARIANTS)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--stacks", default=stacks, help=f"comma list of {stacks}")
    parser.add_argument("--variants", default=variants, help=f"comma list of {variants}")
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk, a Python loop, or auto (wrk when on PATH; the default)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--publish", type=Path, help="copy a full run's results here too")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stack_keys = _choose(args.stacks, [s.key for s in STACKS], "stacks")
    variant_keys = _choose(args.variants, [v.key for v in VARIANTS], "variants")
    if "plain" not in variant_keys:
        variant_keys.insert(0, "plain")  # every overhead is against the same round's plain run
    stacks = [s for s in STACKS if s.key in stack_keys]
    variants = [v for v in VARIANTS if v.key in variant_keys]
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        print("bench-app: --rounds, --duration and --connections must be positive", file=sys.stderr)
        return 2
    if args.load == "wrk" and not wrk_available():
        print("bench-app: wrk is not on PATH (make bench-app installs it)", file=sys.stderr)
        return 2
    load_tool = (
        "wrk" if args.load == "wrk" or (args.load == "auto" and wrk_available()) else "python"
    )
    options = Options(args.rounds, args.duration, args.warmup, args.connections, load_tool)
    tool = (
        "wrk"
        if load_tool == "wrk"
        else "a Python load loop" + (" (wrk is not on PATH)" if args.load == "auto" else "")
    )
    runs = args.rounds * len(stacks) * len(variants)
    print(
        f"bench-app: {runs} runs ({len(stacks)} stacks x {len(variants)} variants x"
        f" {args.rounds} rounds), {args.duration:g} s each with {tool}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        setup = make_setup(Path(tmp), variants)
        results = run_rounds(stacks, variants, setup, options, Path(tmp), _say)
    elapsed_s = time.monotonic() - started
    meta = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m bench.app " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "load_tool": load_tool,
        "elapsed_s": round(elapsed_s, 1),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}",
    }
    rows = summarise(results, stacks, variants)
    document = {"meta": meta, "rows": rows, "runs": [r.as_dict() for r in results]}
    table = markdown(rows, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = meta["created"].replace("-", "").replace(":", "")
    for name in (f"{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "latest.md").write_text(table)
    chart = None if args.no_chart else _chart(args.out / "latest.json", args.out / "overhead.png")
    print("\n" + table)
    print(f"bench-app: {len(results)} runs in {elapsed_s / 60:.1f} min; results in {args.out}")
    full = (
        len(stacks) == len(STACKS)
        and len(variants) == len(VARIANTS)
        and args.rounds >= MIN_PUBLISHED_ROUNDS
    )
    if args.publish is not None:
        if full and chart is not None:
            _publish(args.out, chart, args.publish)
        else:
            print("bench-app: not published (only a full run with its chart is)", flush=True)
    return 0 if all(r.ok for r in results) else 1


def _say(line: str) -> None:
    print(line, flush=True)


def _chart(results: Path, out: Path) -> Path | None:
    try:
        python = ensure_venv("app-report") / "python"
        chart_script = Path(__file__).resolve().parent / "chart.py"
        subprocess.run([str(python), str(chart_script), str(results), str(out)], check=True)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench-app: no chart ({exc})", file=sys.stderr)
        return None
    return out


def _publish(out: Path, chart: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "latest.json", target / "results.json")
    shutil.copyfile(out / "latest.md", target / "results.md")
    shutil.copyfile(chart, target / "overhead.png")
    print(f"bench-app: published to {target}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
