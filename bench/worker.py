"""Runs one benchmark case in this (fresh) interpreter and prints its result as JSON.

``python -m bench.worker CASE [--quick]`` is what ``bench.__main__`` starts, once per case,
with our venv's Python or the peer's: a fresh process per case means no thread, queue or
warm cache left behind by the case before. Standard library only at import time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence

from bench.registry import CASES, CaseResult, Settings

__all__ = ["RESULT_MARKER", "main", "run_case"]

#: Prefix of the one stdout line the parent reads; anything else a library prints is ignored.
RESULT_MARKER = "BENCH-RESULT "


def run_case(name: str, settings: Settings) -> CaseResult:
    case = next((c for c in CASES if c.name == name), None)
    if case is None:
        raise SystemExit(f"unknown case {name!r}")
    module_name, _, function_name = case.runner.partition(":")
    module = importlib.import_module(f"bench.{module_name}")
    runner: Callable[[Settings], CaseResult] = getattr(module, function_name)
    return runner(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("case")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run_case(args.case, Settings.for_mode(args.quick))
    sys.stdout.write(RESULT_MARKER + json.dumps(result.as_dict()) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
