"""Smoke tests of the callgrind instruction counts (``bench.instructions``).

One tiny real count under valgrind (a few seconds; skipped with the reason where valgrind is
absent), the parsing of callgrind's per-thread files, the judged ratio, and the one-line skip.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.instructions import (
    CallgrindError,
    count_instructions,
    read_main_thread_ir,
    valgrind_missing_reason,
)
from bench.peer_env import clean_env
from bench.report import Ratio


def test_floor_costs_a_plausible_positive_count_per_operation() -> None:
    reason = valgrind_missing_reason()
    if reason is not None:
        pytest.skip(reason)

    counted = count_instructions(sys.executable, "floor", quick=True, pairs=1, env=clean_env())

    # A call, a clock read, a six-key dict and an append: thousands of machine instructions,
    # never zero (nothing subtracted) nor the interpreter's start-up (hundreds of millions).
    per_op = counted["value"]
    assert isinstance(per_op, float)
    assert 500 < per_op < 50_000
    info = counted["info"]
    assert isinstance(info, dict)
    (pair,) = info["ir"]
    assert pair["op"] > pair["bare"] > 10_000_000


def _write_thread(base: Path, thread: int, total: int) -> None:
    lines = ["# callgrind format", "version: 1", f"thread: {thread}", "events: Ir"]
    lines += ["fn=(1) main", "0 5", f"totals: {total}"]
    base.with_name(f"{base.name}-{thread:02d}").write_text("\n".join(lines) + "\n")


def test_main_thread_count_is_read_apart_from_the_others(tmp_path: Path) -> None:
    out = tmp_path / "case.op.out"
    _write_thread(out, 1, 1_000)
    _write_thread(out, 2, 70)

    assert read_main_thread_ir(out) == (1_000, 1_070)


def test_missing_main_thread_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CallgrindError, match="main-thread"):
        read_main_thread_ir(tmp_path / "nothing.out")


def test_ratios_judge_instruction_counts_not_wall_time() -> None:
    outcomes: dict[str, dict[str, object]] = {
        "ours": {"value": 100.0, "instructions": {"value": 3_000.0}},
        "base": {"value": 100.0, "instructions": {"value": 1_000.0}},
    }

    check = Ratio("ours/base", "ours", "base", at_most=2, instructions=True).evaluate(outcomes)

    assert (check.value, check.verdict) == (3.0, "MISS")


def test_without_valgrind_one_line_says_the_rows_are_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)

    status = main(["--instructions-only", "--only", "floor", "--results-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert status == 0
    assert captured.err.count("instruction rows skipped: valgrind is not on PATH") == 1
    assert "INSTRUCTIONS skipped" in captured.out
