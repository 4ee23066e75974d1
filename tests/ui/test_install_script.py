"""scripts/install-chromium.sh: nothing to do when the browser is there, a clear exit 2 where
it cannot install, and apt-get's failure passed on (so CI fails instead of skipping)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ui.conftest import CANNOT_INSTALL_HERE, INSTALL_SCRIPT


def fake_bin(directory: Path, commands: dict[str, str]) -> Path:
    """A PATH directory holding a few basic tools and the given commands as tiny scripts."""
    directory.mkdir()
    for tool in ("id", "ls", "touch", "chmod"):
        os.symlink(shutil.which(tool) or f"/usr/bin/{tool}", directory / tool)
    for name, body in commands.items():
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return directory


def run_script(path: Path, chromium: Path, driver: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(path),
        "PROFILIS_CHROMIUM": str(chromium),
        "PROFILIS_CHROMEDRIVER": str(driver),
    }
    argv = ["/bin/bash", str(INSTALL_SCRIPT)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_does_nothing_when_chromium_and_chromedriver_exist(tmp_path: Path) -> None:
    marker = tmp_path / "apt-get-ran"
    bin_dir = fake_bin(tmp_path / "bin", {"apt-get": f"touch {marker}; exit 1"})
    result = run_script(bin_dir, executable(tmp_path / "chromium"), executable(tmp_path / "driver"))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_exits_2_with_a_message_where_it_cannot_install(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path / "bin", {})  # no apt-get (or not root)
    result = run_script(bin_dir, tmp_path / "chromium", executable(tmp_path / "driver"))
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "chromium-driver" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt-get path runs only as root")
def test_an_apt_get_failure_is_not_mistaken_for_cannot_install(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path / "bin", {"apt-get": "exit 100"})
    result = run_script(bin_dir, tmp_path / "chromium", tmp_path / "driver")
    assert result.returncode not in (0, CANNOT_INSTALL_HERE)


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt-get path runs only as root")
def test_installs_both_packages_without_recommends(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    chromium, driver = tmp_path / "chromium", tmp_path / "driver"
    # A stand-in apt-get that logs its arguments and "installs" the two files.
    install = f"touch {chromium} {driver}; chmod +x {chromium} {driver}"
    body = f'echo "$@" >> {log}; case "$1" in install) {install};; esac'
    result = run_script(fake_bin(tmp_path / "bin", {"apt-get": body}), chromium, driver)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1].split() == [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ]
