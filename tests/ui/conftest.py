"""Fixtures for the dashboard tests: real servers serving it, and a real headless Chromium.

`scripts/install-chromium.sh` installs Debian's chromium and chromium-driver when run as
root (as in CI); where it cannot (exit status 2: not root, no apt-get) the browser tests
skip with its message. Any other failure of the script fails them: CI must run them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.adapters.servers import REPO_ROOT

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-chromium.sh"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CANNOT_INSTALL_HERE = 2
#: Screenshots and page dumps of the browser tests (git-ignored).
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    """(chromium, chromedriver), installed by the project's script when missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600
        )
        if result.returncode == CANNOT_INSTALL_HERE:
            pytest.skip(f"Chromium missing and not installable here: {result.stderr}")
        assert result.returncode == 0, f"{INSTALL_SCRIPT.name} failed:\n{result.stderr}"
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "install-chromium.sh installed nothing"
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="session")
def artifacts() -> Iterator[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTIFACTS


# From shared/TOOLCHAIN.md: without the background-networking flags Chromium keeps trying to
# reach the (closed) network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
)


@pytest.fixture(scope="module")
def browser(
    chromium: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebDriver]:
    """A headless Chromium driven through chromedriver, one per test module."""
    # Imported here: only the browser tests need selenium.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium[0])
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(chromium[1])))
    driver.set_page_load_timeout(20.0)
    try:
        yield driver
    finally:
        driver.quit()
