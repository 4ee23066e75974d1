"""scripts/apt-install.sh as `make setup` runs it: a line per step, a bounded and announced
wait while another package manager holds the lock, and exit statuses the callers rely on.

apt-get is a stand-in on PATH and the lock a scratch file this test process holds with
fcntl, as apt and dpkg hold theirs; the machine's own locks are never touched.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from pathlib import Path

from tests.setup.shims import (
    APT_INSTALL,
    BASH,
    CANNOT_INSTALL_HERE,
    LOCK_HELD_TOO_LONG,
    fake_apt_get,
    fake_bin,
    run,
)


def lock_env(lock: Path, timeout_s: int) -> dict[str, str]:
    return {"PROFILIS_APT_LOCKS": str(lock), "PROFILIS_APT_LOCK_TIMEOUT": str(timeout_s)}


def test_prints_each_step_and_installs_without_recommends(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log)})
    result = run(APT_INSTALL, path, "pkg-a", "pkg-b", env=lock_env(tmp_path / "lock", 300))
    assert result.returncode == 0, result.stderr
    assert "waiting" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "setup: apt-get update (package lists)…"
    assert lines[1].startswith("setup: package lists updated in ")
    assert lines[2] == (
        "setup: apt-get install pkg-a pkg-b: downloading 2 MB (1 packages), then unpacking…"
    )
    assert lines[3].startswith("setup: installed pkg-a pkg-b in ")
    update, _print_uris, install = (call.split() for call in log.read_text().splitlines())
    assert update[:2] == ["update", "-qq"]
    assert install[:4] == ["install", "-y", "-qq", "--no-install-recommends"]
    assert install[-2:] == ["pkg-a", "pkg-b"]
    # apt-get's own wait for the dpkg lock, bounded by what is left of ours.
    for call in (update, install):
        option = call[call.index("-o") + 1]
        assert option.startswith("DPkg::Lock::Timeout=")
        assert 290 <= int(option.partition("=")[2]) <= 300


def test_waits_for_a_held_lock_says_so_and_installs_once_it_is_released(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log)})
    lock = tmp_path / "lock-frontend"
    with lock.open("w") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        script = subprocess.Popen(
            [BASH, str(APT_INSTALL), "pkg-a"],
            env={"PATH": str(path), **lock_env(lock, 60)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert script.stderr is not None
        # The first thing it says; it would give up (and exit) after 60 s, so this returns.
        waiting = script.stderr.readline()
        assert waiting.startswith("setup: waiting up to "), waiting
        assert f"(pid {os.getpid()}, " in waiting
        assert f"to release {lock}…" in waiting
        assert not log.exists(), "apt-get ran while the lock was held"
        fcntl.lockf(held, fcntl.LOCK_UN)
    rest = script.communicate(timeout=30)[1]
    assert script.returncode == 0, rest
    assert rest.startswith("setup: lock released after ")
    assert "setup: installed pkg-a in " in rest
    assert log.read_text().splitlines()[0].startswith("update ")


def test_gives_up_when_the_lock_stays_held_past_the_bound(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log)})
    lock = tmp_path / "lock-frontend"
    with lock.open("w") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        result = run(APT_INSTALL, path, "pkg-a", env=lock_env(lock, 1))
    assert result.returncode == LOCK_HELD_TOO_LONG, result.stderr
    # "up to 1 s", or 0 once the script's whole-second clock ticked before it got there.
    assert re.search(r"setup: waiting up to [01] s for another package manager", result.stderr)
    assert f"setup: gave up after 1 s: {lock} is still held (pid {os.getpid()}, " in result.stderr
    assert "PROFILIS_APT_LOCK_TIMEOUT=SECONDS waits longer" in result.stderr
    assert not log.exists()


def test_not_root_exits_2_and_says_what_to_run(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log)}, uid=1000)
    result = run(APT_INSTALL, path, "pkg-a", "pkg-b")
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "not root" in result.stderr
    assert "run as root: apt-get install --no-install-recommends pkg-a pkg-b" in result.stderr
    assert not log.exists()


def test_without_apt_get_it_exits_2(tmp_path: Path) -> None:
    result = run(APT_INSTALL, fake_bin(tmp_path / "bin", {}), "pkg-a")
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "cannot install pkg-a here: apt-get not found" in result.stderr


def test_an_apt_get_failure_keeps_its_exit_status(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(log, status=100)})
    result = run(APT_INSTALL, path, "pkg-a", env=lock_env(tmp_path / "lock", 300))
    assert result.returncode == 100
