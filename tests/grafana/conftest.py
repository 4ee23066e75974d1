"""Fixtures for the grafana/ tests: the Prometheus tools, installed by the project if absent.

`scripts/install-prometheus.sh` installs the Debian packages when run as root (as in CI);
where it cannot run (exit status 2: not root, no apt-get) the tests that need the tools skip
with its message. Any other failure of the script fails the tests: CI must run them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install-prometheus.sh"
TOOLS = ("promtool", "prometheus", "prometheus-alertmanager")
CANNOT_INSTALL_HERE = 2


@pytest.fixture(scope="session")
def prometheus_tools() -> dict[str, str]:
    """Paths of promtool, prometheus and prometheus-alertmanager."""
    if any(shutil.which(tool) is None for tool in TOOLS):
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600
        )
        if result.returncode == CANNOT_INSTALL_HERE:
            pytest.skip(f"Prometheus tools missing and not installable here: {result.stderr}")
        assert result.returncode == 0, f"{INSTALL_SCRIPT.name} failed:\n{result.stderr}"
    paths = {tool: shutil.which(tool) for tool in TOOLS}
    missing = [tool for tool, path in paths.items() if path is None]
    assert not missing, f"still missing after {INSTALL_SCRIPT.name}: {missing}"
    return {tool: str(path) for tool, path in paths.items()}
