"""scripts/install-prometheus.sh: nothing to do when the tools are there, a clear exit 2 where
it cannot install, and apt-get's failure passed on (so CI fails instead of skipping)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.grafana.conftest import CANNOT_INSTALL_HERE, INSTALL_SCRIPT, TOOLS


def fake_bin(directory: Path, commands: dict[str, str]) -> Path:
    """A PATH directory holding ``id`` and the given commands as tiny shell scripts."""
    directory.mkdir()
    os.symlink(shutil.which("id") or "/usr/bin/id", directory / "id")
    for name, body in commands.items():
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return directory


def run_script(path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(path)}
    argv = ["/bin/bash", str(INSTALL_SCRIPT)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_does_nothing_when_the_tools_are_on_path(tmp_path: Path) -> None:
    marker = tmp_path / "apt-get-ran"
    commands = dict.fromkeys(TOOLS, "exit 0") | {"apt-get": f"touch {marker}; exit 1"}
    result = run_script(fake_bin(tmp_path / "bin", commands))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_exits_2_with_a_message_where_it_cannot_install(tmp_path: Path) -> None:
    result = run_script(fake_bin(tmp_path / "bin", {}))  # no tools, no apt-get
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "prometheus-alertmanager" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt-get path runs only as root")
def test_an_apt_get_failure_is_not_mistaken_for_cannot_install(tmp_path: Path) -> None:
    result = run_script(fake_bin(tmp_path / "bin", {"apt-get": "exit 100"}))
    assert result.returncode not in (0, CANNOT_INSTALL_HERE)
