"""`make demo DURATION=30` from a fresh clone: what a newcomer types, checked as they'd read it.

The clone sets up what `make demo` needs itself (a new virtualenv from uv's cache, ~10 s),
then the demo: the operator's injection, the pod runner, gunicorn with 4 workers, the
sidecar, Prometheus.
In CI the working tree is committed and the test clones it with git; on a developer's
machine with uncommitted changes it copies the working tree (tracked and untracked files,
.gitignore respected) into a new repository instead, so it tests what is on disk.
The summary is printed and kept in test-artifacts/demo-summary.txt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from demo.traffic import ROUTES

pytestmark = [pytest.mark.slow, pytest.mark.live]

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "demo-summary.txt"
DURATION_S = 30
# setup (~10 s) + start-up (~5 s) + 30 s + stopping (~5 s), with room for a slow machine.
MAKE_TIMEOUT_S = 110


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def fresh_checkout(target: Path) -> str:
    """A clone of the repository at ``target``; returns how it was made."""
    if not _git("status", "--porcelain", cwd=REPO).strip():
        _git("clone", "--quiet", str(REPO), str(target), cwd=REPO)
        return "git clone"
    target.mkdir()
    files = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    for name in filter(None, files.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    _git("init", "--quiet", cwd=target)
    return "copy of the uncommitted working tree"


def final_summary(output: str) -> str:
    marker = "== Profilis demo: final summary"
    assert marker in output, f"no final summary in the demo's output:\n{output[-3000:]}"
    return output[output.index(marker) :]


def test_make_demo_from_a_fresh_clone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    clone = tmp_path / "profilis"
    how = fresh_checkout(clone)
    # Only the demo's own variables: the clone must not borrow this run's virtualenv.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run(
        ["make", "demo", f"DURATION={DURATION_S}"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make demo failed ({how}):\n{output[-5000:]}"
    summary = final_summary(result.stdout)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(summary)
    with capsys.disabled():
        print(f"\n[demo] {how}; make demo DURATION={DURATION_S}:\n{summary}")

    routes = {
        (m.group(1), m.group(2)): int(m.group(3))
        for m in re.finditer(r"^\s+route\s+(\S+)\s+(\S+)\s+(\d+)", summary, re.MULTILINE)
    }
    for route in ROUTES:
        assert routes.get((route.method, route.template), 0) > 0, (
            f"no requests on {route.method} {route.template}:\n{summary}"
        )
    assert re.search(r"^functions\s+[1-9]\d* calls", summary, re.MULTILINE), (
        f"no calls of the shop's @profile'd functions:\n{summary}"
    )
    db = re.search(r"^db queries\s+(\d+)", summary, re.MULTILINE)
    assert db is not None and int(db.group(1)) > 0, f"no DB events:\n{summary}"
    assert re.search(r"^workers\s+.*\b4 \(shop\)", summary, re.MULTILINE), (
        f"the sidecar did not see 4 gunicorn workers:\n{summary}"
    )
    assert "demo: everything stopped." in result.stdout
    logs = re.search(r"^demo: logs kept in (.+)$", result.stdout, re.MULTILINE)
    assert logs and (Path(logs.group(1)) / "pod.log").is_file(), result.stdout[-2000:]
