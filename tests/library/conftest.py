"""Profilis 1.0 itself, for the tests that compare 2.0's compatibility layer with it.

The release is installed from the package index into ``.bench/peer-venv`` by the
benchmark's own recipe (``bench.peer_env``: its own virtualenv, so 1.0 never shadows our
``profilis``), once, then reused. Where it cannot be installed (no network), the tests
that need it skip with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.peer_env import PeerEnvError, clean_env, ensure_peer_python

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def peer_python() -> Path:
    """The Python of a virtualenv holding Profilis 1.0.0."""
    try:
        return ensure_peer_python(REPO / ".bench" / "peer-venv")
    except PeerEnvError as exc:
        pytest.skip(f"Profilis 1.0 could not be installed into .bench/peer-venv: {exc}")


@pytest.fixture(scope="session")
def peer_package(peer_python: Path) -> Path:
    """The folder of Profilis 1.0's ``profilis`` package."""
    done = subprocess.run(
        [str(peer_python), "-c", "import os, profilis; print(os.path.dirname(profilis.__file__))"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip())
