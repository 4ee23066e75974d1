"""Turns bench/app's runs into figures: per stack and variant, the median over rounds (with
the range) of throughput, latency and CPU per request, and the overhead against the plain run
of the same round; then the Markdown table and the JSON document.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.app.runner import BALANCED_SHARE, LOAD_ATTEMPTS, RunResult
from bench.app.variants import Stack, Variant

__all__ = ["TARGET_PCT", "Spread", "markdown", "summarise"]

#: Issue 19's target: the Profilis 2 agent costs at most this much of the app's CPU per request.
TARGET_PCT = 3.0
TARGET_VARIANT = "profilis2"


@dataclass(frozen=True)
class Spread:
    """A median over rounds and the range around it."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        return cls(statistics.median(values), min(values), max(values)) if values else None

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high}


def summarise(
    results: Sequence[RunResult], stacks: Sequence[Stack], variants: Sequence[Variant]
) -> list[dict[str, Any]]:
    """One row per stack and variant (JSON-ready)."""
    rows: list[dict[str, Any]] = []
    for stack in stacks:
        plain = {r.round: r for r in results if r.stack == stack.key and r.variant == "plain"}
        for variant in variants:
            runs = [r for r in results if r.stack == stack.key and r.variant == variant.key]
            good = [r for r in runs if r.ok]
            paired = [(r, plain[r.round]) for r in good if r.round in plain and plain[r.round].ok]
            cpu_overhead = Spread.of(
                [(r.cpu_us_per_request / p.cpu_us_per_request - 1) * 100 for r, p in paired]
            )
            rps_change = Spread.of([(r.rps / p.rps - 1) * 100 for r, p in paired])
            # The app's own processes only (the sidecar or receiver left out): the agent's share.
            app_overhead = Spread.of(
                [
                    (
                        (r.cpu_us_per_request - r.helper_cpu_us_per_request) / p.cpu_us_per_request
                        - 1
                    )
                    * 100
                    for r, p in paired
                ]
            )
            figures = {
                "rps": Spread.of([r.rps for r in good]),
                "p50_ms": Spread.of([r.p50_ms for r in good]),
                "p99_ms": Spread.of([r.p99_ms for r in good]),
                "cpu_us_per_request": Spread.of([r.cpu_us_per_request for r in good]),
                "cpu_overhead_pct": None if variant.key == "plain" else cpu_overhead,
                "helper_cpu_us_per_request": Spread.of([r.helper_cpu_us_per_request for r in good]),
                "app_cpu_overhead_pct": None if variant.key == "plain" else app_overhead,
                "rps_change_pct": None if variant.key == "plain" else rps_change,
            }
            rows.append(
                {
                    "stack": stack.key,
                    "stack_label": stack.label,
                    "variant": variant.key,
                    "variant_label": variant.label,
                    "rounds": len(runs),
                    "rounds_ok": len(good),
                    "failures": [f"round {r.round}: {r.check}" for r in runs if not r.ok],
                    "checks": [r.check for r in good],
                    # Runs whose first load went to one worker (see bench.app.runner).
                    "loads_repeated": sum(1 for r in runs if r.load_attempts > 1),
                    "loads_uneven": sum(1 for r in good if r.worker_balance < BALANCED_SHARE),
                    **{key: (s.as_dict() if s else None) for key, s in figures.items()},
                }
            )
    return rows


def _cell(figure: object, fmt: str, signed: bool = False, unit: str = "") -> str:
    if not isinstance(figure, dict):
        return "-"
    sign = "+" if signed else ""
    median, low, high = (format(figure[k], sign + fmt) for k in ("median", "min", "max"))
    return f"{median}{unit} ({low} … {high})"


def markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "| Stack | Variant | req/s | p50 ms | p99 ms | CPU µs/request | CPU/request vs plain"
        " | of which app processes | req/s vs plain | Variant on? |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["variant"] == "plain":
            on = "(baseline)"
        elif row["rounds_ok"] == row["rounds"]:
            on = f"yes, {row['rounds_ok']}/{row['rounds']} runs"
        else:
            on = f"**FAILED** {row['rounds'] - row['rounds_ok']}/{row['rounds']} runs"
        lines.append(
            f"| {row['stack_label']} | {row['variant_label']} | {_cell(row['rps'], '.0f')}"
            f" | {_cell(row['p50_ms'], '.2f')} | {_cell(row['p99_ms'], '.2f')}"
            f" | {_cell(row['cpu_us_per_request'], '.0f')}"
            f" | {_cell(row['cpu_overhead_pct'], '.1f', signed=True, unit='%')}"
            f" | {_cell(row['app_cpu_overhead_pct'], '.1f', signed=True, unit='%')}"
            f" | {_cell(row['rps_change_pct'], '.1f', signed=True, unit='%')} | {on} |"
        )
    lines += ["", _target_line(rows), "", _how(meta) + _repeats(rows)]
    failures = [
        f"- {row['stack']} / {row['variant']}: {f}" for row in rows for f in row["failures"]
    ]
    if failures:
        lines += ["", "Failed runs:", *failures]
    return "\n".join(lines) + "\n"


def _target_line(rows: Sequence[dict[str, Any]]) -> str:
    verdicts = []
    for row in rows:
        if row["variant"] != TARGET_VARIANT:
            continue
        figure = row["cpu_overhead_pct"]
        if not isinstance(figure, dict):
            verdicts.append(f"{row['stack']}: no figure")
            continue
        met = figure["median"] <= TARGET_PCT
        verdicts.append(f"{row['stack']} {figure['median']:+.1f}% ({'met' if met else 'NOT met'})")
    return (
        f"Target (issue 19): the Profilis 2 agent + sidecar costs at most {TARGET_PCT:g}% CPU per"
        " request over plain, median of the paired rounds, on every stack: " + "; ".join(verdicts)
    )


def _repeats(rows: Sequence[dict[str, Any]]) -> str:
    repeated = sum(row.get("loads_repeated", 0) for row in rows)
    uneven = sum(row.get("loads_uneven", 0) for row in rows)
    runs = sum(row["rounds"] for row in rows)
    if not repeated:
        return ""
    return (
        f" Loads run again because one worker took nearly all of the load (every worker must do"
        f" at least {BALANCED_SHARE:.0%} of an even share of the workers' CPU; wrk's"
        f" connections are accepted by whichever worker wakes first): {repeated} of {runs}"
        f" runs; still uneven after {LOAD_ATTEMPTS} loads, and kept: {uneven}."
    )


def _how(meta: dict[str, Any]) -> str:
    return (
        f"{meta['rounds']} rounds, variants interleaved within each round; each run"
        f" {meta['duration_s']:g} s of {meta['load_tool']} with {meta['connections']}"
        " connections over /, /items/N and /users/N (SQLite via SQLAlchemy), after a"
        f" {meta['warmup_s']:g} s warm-up, in fresh processes. Cells: median over rounds"
        " (min … max). CPU µs/request: utime+stime of the server's processes (master,"
        " workers) and of the variant's sidecar or OTLP receiver, from /proc, over requests"
        " answered. 'vs plain': each run against the plain run of the same stack and round;"
        " 'of which app processes': the same without the sidecar's or receiver's CPU."
        f" Machine: {meta['machine']}."
    )
