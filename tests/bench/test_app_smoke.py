"""Smoke test of ``make bench-app`` (bench/app): the real harness in a tiny mode.

One stack (gunicorn sync + Flask), one round, 2 s of load (wrk when on PATH, else the
harness's own Python loop): plain and Profilis 2's agent + sidecar always (they need only the
repo's .venv); the peers too when their venvs under .bench are already built (no network).
Each asserts what a reader of the results would: a row per variant, the figures, and the
'variant is on' check passed (the variant's output holds every request the app answered).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.app.venvs import venv_exists

REPO = Path(__file__).resolve().parents[2]
PEERS = {"profilis1": "app-profilis1", "otel": "app-otel", "prometheus": "app-prometheus"}


def run_harness(
    out: Path, variants: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    argv = [
        *(sys.executable, "-m", "bench.app", "--rounds", "1", "--duration", "2"),
        *("--warmup", "1", "--connections", "4", "--stacks", "gunicorn-sync"),
        *("--variants", variants, "--out", str(out), "--no-chart"),
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=100)
    document = json.loads((out / "latest.json").read_text()) if done.returncode < 2 else {}
    return done, document


def row(document: dict[str, Any], variant: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in document["rows"] if r["variant"] == variant)
    return found


@pytest.mark.timeout(110)
def test_plain_and_profilis2_rows_with_the_agent_really_on(tmp_path: Path) -> None:
    done, document = run_harness(tmp_path, "plain,profilis2")

    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["variant"] for r in document["rows"]] == ["plain", "profilis2"]
    plain, agent = row(document, "plain"), row(document, "profilis2")
    assert plain["rounds_ok"] == agent["rounds_ok"] == 1
    assert agent["checks"][0].startswith("on: ")
    assert "the sidecar's profilis_http_requests_total" in agent["checks"][0]
    assert plain["cpu_us_per_request"]["median"] > 0
    assert agent["cpu_overhead_pct"] is not None  # paired with the same round's plain run
    run = next(r for r in document["runs"] if r["variant"] == "profilis2")
    assert run["expected"] <= run["counted"], run
    table = (tmp_path / "latest.md").read_text()
    assert "| gunicorn sync x2 + Flask | plain |" in table
    assert "| gunicorn sync x2 + Flask | Profilis 2 agent + sidecar |" in table
    assert "FAILED" not in table


@pytest.mark.timeout(110)
def test_peers_rows_when_their_venvs_are_built(tmp_path: Path) -> None:
    built = [variant for variant, venv in PEERS.items() if venv_exists(venv)]
    if not built:
        pytest.skip("no peer venv under .bench yet (`make bench-app` builds them; needs PyPI)")

    done, document = run_harness(tmp_path, ",".join(built))

    assert done.returncode == 0, done.stdout + done.stderr
    for variant in built:
        assert row(document, variant)["rounds_ok"] == 1, row(document, variant)
        assert row(document, variant)["checks"][0].startswith("on: ")
