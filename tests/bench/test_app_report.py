"""bench/app's figures and checks, from made-up runs (no servers): pairing with the same
round's plain run, medians and ranges, loud failures, and reading Prometheus text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.app.report import markdown, summarise
from bench.app.runner import RunResult, worker_balance
from bench.app.variants import STACKS, VARIANTS, _sum_samples

META = {
    "rounds": 3,
    "duration_s": 8.0,
    "warmup_s": 1.0,
    "connections": 8,
    "load_tool": "wrk",
    "machine": "test",
}
STACK = STACKS[0]
PLAIN, AGENT = VARIANTS[0], VARIANTS[1]


def run(round_no: int, variant: str, cpu_us: float, ok: bool = True) -> RunResult:
    return RunResult(
        round=round_no,
        stack=STACK.key,
        variant=variant,
        ok=ok,
        check="on: …"
        if ok
        else "FAILED: the sidecar's count holds 10 requests, the app answered 99",
        requests=1000,
        duration_s=1.0,
        rps=1000.0,
        p50_ms=1.0,
        p99_ms=5.0,
        cpu_us_per_request=cpu_us,
    )


def test_overhead_is_paired_by_round_and_reported_as_median_and_range() -> None:
    # Plain drifts between rounds; the agent costs +2%, +4%, +10% of its own round's plain.
    results = [
        run(1, "plain", 100.0), run(1, "profilis2", 102.0),
        run(2, "plain", 200.0), run(2, "profilis2", 208.0),
        run(3, "plain", 150.0), run(3, "profilis2", 165.0),
    ]  # fmt: skip

    rows = summarise(results, [STACK], [PLAIN, AGENT])

    overhead = rows[1]["cpu_overhead_pct"]
    assert overhead == pytest.approx({"median": 4.0, "min": 2.0, "max": 10.0})
    assert rows[0]["cpu_overhead_pct"] is None
    table = markdown(rows, META)
    assert "+4.0% (+2.0 … +10.0)" in table
    assert "gunicorn-sync +4.0% (NOT met)" in table


def test_a_run_whose_variant_was_not_on_fails_its_row_loudly() -> None:
    results = [run(1, "plain", 100.0), run(1, "profilis2", 101.0, ok=False)]

    rows = summarise(results, [STACK], [PLAIN, AGENT])
    table = markdown(rows, META)

    assert rows[1]["rounds_ok"] == 0
    assert "**FAILED** 1/1 runs" in table
    assert "round 1: FAILED: the sidecar's count holds 10 requests" in table
    assert "gunicorn-sync: no figure" in table


@pytest.mark.parametrize(
    ("worker_cpu_s", "balance"),
    [
        ([5.0, 5.0], 1.0),  # even
        ([2.0, 6.0], 0.5),  # 2 of 8 connections on one worker: kept (>= 0.4)
        ([0.05, 6.5], 0.1 / 6.55),  # one worker accepted every connection: run again
        ([1.0, 1.0, 4.0], 0.5),
        ([3.0], 1.0),  # one worker: nothing to balance
        ([0.0, 0.0], 1.0),  # no CPU at all: nothing to judge
    ],
)
def test_worker_balance_is_the_least_busy_workers_cpu_over_an_even_share(
    worker_cpu_s, balance
) -> None:
    assert worker_balance(worker_cpu_s) == pytest.approx(balance)


def test_loads_run_again_for_an_idle_worker_are_said_under_the_table() -> None:
    again = replace(run(1, "profilis2", 102.0), load_attempts=2)
    stuck = replace(run(2, "profilis2", 104.0), load_attempts=4, worker_balance=0.02)
    results = [run(1, "plain", 100.0), again, run(2, "plain", 100.0), stuck]

    rows = summarise(results, [STACK], [PLAIN, AGENT])
    table = markdown(rows, META)

    assert (rows[1]["loads_repeated"], rows[1]["loads_uneven"]) == (2, 1)
    assert "took nearly all of the load" in table
    assert ": 2 of 4 runs; still uneven after 4 loads, and kept: 1." in table
    plain_only = markdown(summarise(results[::2], [STACK], [PLAIN]), META)
    assert "took nearly all" not in plain_only


def test_prometheus_samples_are_summed_even_with_braces_in_label_values() -> None:
    text = "\n".join(
        [
            "# TYPE http_requests_total counter",
            'http_requests_total{handler="/",method="GET",status="2xx"} 3.0',
            'http_requests_total{handler="/items/{item_id}",method="GET",status="2xx"} 4.0',
            'http_requests_total{handler="/metrics",method="GET",status="2xx"} 1.0',
            'http_requests_total_created{handler="/"} 1.7e9',
        ]
    )

    assert _sum_samples(text, "http_requests_total") == 8
    assert _sum_samples(text, "http_requests_total", 'handler="/items/{item_id}"') == 4
