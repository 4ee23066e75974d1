"""Each make command sets up only what it needs: the demo no browser, helm or control plane;
`make test` all of them. Read from `make -n` (prints the commands, runs none)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.setup.shims import REPO

PIECES = (
    "install-prometheus.sh",
    "install-chromium.sh",
    "install-odbc.sh",
    "install-valgrind.sh",
    "install-wrk.sh",
    "fetch-helm.sh",
    "build-control-plane.sh",
)
NEEDS = {
    "demo": {"install-prometheus.sh"},
    "lint": set(),
    "bench": {"install-valgrind.sh"},
    "bench-app": {"install-wrk.sh"},
    "chart": {"fetch-helm.sh"},
    "setup": set(PIECES) - {"build-control-plane.sh"},
    "test": set(PIECES),
}


@pytest.mark.parametrize(("command", "needs"), NEEDS.items())
def test_each_command_sets_up_only_what_it_needs(command: str, needs: set[str]) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry_run = subprocess.run(
        ["make", "--dry-run", "--directory", str(REPO), command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    assert {piece for piece in PIECES if piece in dry_run.stdout} == needs, dry_run.stdout
