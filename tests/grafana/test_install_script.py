"""scripts/install-prometheus.sh: nothing to do when the tools are there, a clear exit 2 where
it cannot install, apt-get's failure passed on (so CI fails instead of skipping), and a line
saying what it installs before the apt-get steps (scripts/apt-install.sh, tested in
tests/setup)."""

from __future__ import annotations

from pathlib import Path

from tests.grafana.conftest import CANNOT_INSTALL_HERE, INSTALL_SCRIPT, TOOLS
from tests.setup.shims import fake_apt_get, fake_bin, run


def test_does_nothing_when_the_tools_are_on_path(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    commands = dict.fromkeys(TOOLS, "exit 0") | {"apt-get": fake_apt_get(log)}
    result = run(INSTALL_SCRIPT, fake_bin(tmp_path / "bin", commands))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert not log.exists()


def test_exits_2_with_a_message_where_it_cannot_install(tmp_path: Path) -> None:
    result = run(INSTALL_SCRIPT, fake_bin(tmp_path / "bin", {}))  # no tools, no apt-get
    assert result.returncode == CANNOT_INSTALL_HERE
    assert "prometheus-alertmanager" in result.stderr


def test_an_apt_get_failure_is_not_mistaken_for_cannot_install(tmp_path: Path) -> None:
    path = fake_bin(tmp_path / "bin", {"apt-get": fake_apt_get(tmp_path / "log", status=100)})
    result = run(INSTALL_SCRIPT, path, env={"PROFILIS_APT_LOCKS": str(tmp_path / "lock")})
    assert result.returncode not in (0, CANNOT_INSTALL_HERE)


def test_says_what_it_installs_and_installs_both_packages(tmp_path: Path) -> None:
    log = tmp_path / "apt-get.log"
    bin_dir = tmp_path / "bin"
    # The stand-in apt-get "installs" the three tools into the PATH directory.
    tools = " ".join(f"{bin_dir}/{tool}" for tool in TOOLS)
    apt_get = fake_apt_get(log, on_install=f"touch {tools}; chmod +x {tools}")
    path = fake_bin(bin_dir, {"apt-get": apt_get})
    result = run(INSTALL_SCRIPT, path, env={"PROFILIS_APT_LOCKS": str(tmp_path / "lock")})
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("setup: Prometheus, promtool and Alertmanager for the demo")
    install = log.read_text().splitlines()[-1].split()
    assert install[0] == "install"
    assert "--no-install-recommends" in install
    assert install[-2:] == ["prometheus", "prometheus-alertmanager"]
