"""scripts/install-chromium.sh: nothing to do when the browser is there, a clear exit 2 where
it cannot install, apt-get's failure passed on (so CI fails instead of skipping), and a line
saying what it installs before the apt-get steps (scripts/apt-install.sh, tested in
tests/setup)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.setup.shims import fake_apt_get, fake_bin, run
from tests.ui.conftest import CANNOT_INSTALL_HERE, INSTALL_SCRIPT


def run_script(
    path: Path, chromium: Path, driver: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        "PROFILIS_CHROMIUM": str(chromium),
        "PROFILIS_CHROMEDRIVER": str(driver),
        "PROFILIS_APT_LOCKS": str(tmp_path / "lock"),
    }
    return run(INSTALL_SCRIPT, path, env=env)


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_does_nothing_when_chromium_and_chromedriver_exist(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    bin_dir = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log)})
    chromium, driver = executable(tmp_path / "chromium"), executable(tmp_path / "driver")
    result = run_script(bin_dir, chromium, driver, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert not log.exists()


def test_exits_2_with_a_message_where_it_cannot_install(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path / "bin", {})  # no apt-get
    driver = executable(tmp_path / "driver")
    result = run_script(bin_dir, tmp_path / "chromium", driver, tmp_path)
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "chromium-driver" in result.stderr


def test_an_apt_get_failure_is_not_mistaken_for_cannot_install(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(tmp_path / "log", status=100)})
    result = run_script(bin_dir, tmp_path / "chromium", tmp_path / "driver", tmp_path)
    assert result.returncode not in (0, CANNOT_INSTALL_HERE)


def test_says_what_it_installs_and_installs_both_packages(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    chromium, driver = tmp_path / "chromium", tmp_path / "driver"
    # The stand-in apt-get "installs" the two files.
    apt_get = fake_apt_get(
        log, on_install=f"touch {chromium} {driver}; chmod +x {chromium} {driver}"
    )
    bin_dir = fake_bin(tmp_path / "bin", {"apt-get": apt_get})
    result = run_script(bin_dir, chromium, driver, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("setup: headless Chromium and chromedriver for tests/ui")
    install = log.read_text().splitlines()[-1].split()
    assert install[0] == "install"
    assert "--no-install-recommends" in install
    assert install[-2:] == ["chromium", "chromium-driver"]
