"""Draws bench/app's chart: CPU-per-request overhead against plain, per variant and stack.

Run by the report venv's Python (matplotlib lives there, not in the dev extra):
``python chart.py RESULTS.json OUT.png``. Reads only the JSON, so it imports nothing of ours.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed
import matplotlib.pyplot as plt  # after choosing the backend

TARGET_PCT = 3.0


def draw(results: Path, out: Path) -> None:
    document = json.loads(results.read_text())
    rows = [row for row in document["rows"] if row["variant"] != "plain"]
    stacks = list(dict.fromkeys(row["stack_label"] for row in rows))
    variants = list(dict.fromkeys(row["variant_label"] for row in rows))
    width = 0.8 / max(1, len(variants))
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    for index, variant in enumerate(variants):
        xs, medians, below, above = [], [], [], []
        for position, stack in enumerate(stacks):
            row = next(
                (r for r in rows if r["stack_label"] == stack and r["variant_label"] == variant),
                None,
            )
            figure = row and row["cpu_overhead_pct"]
            if not figure:
                continue
            xs.append(position + (index - (len(variants) - 1) / 2) * width)
            medians.append(figure["median"])
            below.append(figure["median"] - figure["min"])
            above.append(figure["max"] - figure["median"])
        bars = ax.bar(xs, medians, width * 0.92, label=variant)
        ax.errorbar(xs, medians, yerr=[below, above], fmt="none", ecolor="black", capsize=3, lw=1)
        ax.bar_label(bars, labels=[f"{m:+.0f}%" for m in medians], padding=2, fontsize=8)
    ax.axhline(TARGET_PCT, color="crimson", ls="--", lw=1, label=f"target: {TARGET_PCT:g}%")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(stacks)), stacks)
    ax.set_ylabel("server CPU per request vs plain (%)")
    meta = document["meta"]
    ax.set_title(
        f"Whole-app overhead: median of {meta['rounds']} paired rounds (bars: min … max)",
        fontsize=11,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    draw(Path(sys.argv[1]), Path(sys.argv[2]))
