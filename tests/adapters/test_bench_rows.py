"""The adapter rows of ``make bench`` run, and their paired measurement finds a known cost."""

from __future__ import annotations

import itertools

import pytest

from bench.cases_adapters import (
    ROUNDS_QUICK,
    Mode,
    asgi_ours,
    flask_hooks,
    flask_ours,
    paired_overhead,
)
from bench.registry import CaseResult, Settings

QUICK = Settings.for_mode(quick=True)


def test_a_known_extra_cost_is_found_and_nothing_is_found_in_nothing():
    def work() -> int:
        return sum(range(2000))

    def run(mode: Mode, n: int) -> None:
        for _ in itertools.repeat(None, n):
            work()
            if mode == "wrapped":
                work()

    def same(mode: Mode, n: int) -> None:
        for _ in itertools.repeat(None, n):
            work()

    # The thread's CPU time, which another process on the machine does not stretch; the
    # wall-clock figures are make bench's to report, and swing with the machine's load.
    extra = paired_overhead(run, QUICK, {})
    bare_cost = extra.info["bare"]["cpu_median_ns"]  # type: ignore[index]
    assert 0.5 * bare_cost < extra.info["cpu_overhead_ns"] < 1.5 * bare_cost  # type: ignore[operator]
    nothing = paired_overhead(same, QUICK, {}).info["cpu_overhead_ns"]
    assert abs(nothing) < 0.2 * bare_cost  # type: ignore[arg-type]


@pytest.mark.parametrize("row", [flask_hooks, flask_ours, asgi_ours])
def test_the_rows_run(row):
    result: CaseResult = row(QUICK)
    assert (result.unit, len(result.reps)) == ("ns/op", ROUNDS_QUICK)
    assert result.info["wrapped"]["median_ns"] > 0  # type: ignore[index]
