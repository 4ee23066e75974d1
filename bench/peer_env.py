"""Builds, or reuses, the virtualenv that holds the peer: Profilis 1.0.0 from PyPI.

``bench.__main__`` calls ``ensure_peer_python`` once per run when a peer case is selected;
the peer is only ever imported by ``bench.worker`` processes running that venv's Python,
so it can never shadow (or be shadowed by) our ``profilis``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["PEER_REQUIREMENT", "PeerEnvError", "clean_env", "ensure_peer_python", "run_step"]

PEER_REQUIREMENT = "profilis==1.0.0"
_PEER_VERSION = PEER_REQUIREMENT.partition("==")[2]
#: The frameworks of the adapter rows, at the versions pinned in our dev extra, so both sides
#: instrument the very same Flask and Starlette.
PEER_FRAMEWORKS = ("flask==3.1.3", "starlette==1.10.0")
#: pip needs the network on the first run; later runs reuse the venv and need none.
_INSTALL_TIMEOUT_S = 300.0


class PeerEnvError(RuntimeError):
    """The peer venv could not be built; the message says which step failed and why."""


def clean_env() -> dict[str, str]:
    """This environment minus what would let one venv's packages leak into the other."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.pop("VIRTUAL_ENV", None)
    return env


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('profilis'))"
    done = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def run_step(
    what: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = _INSTALL_TIMEOUT_S,
    error: type[RuntimeError] = PeerEnvError,
) -> None:
    """Run one step of building a venv; on failure raise ``error`` naming the step and the
    last lines it printed (also what ``bench.app.venvs`` builds its venvs with)."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=clean_env() if env is None else env,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} timed out after {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise error(f"{what} failed (exit {done.returncode}): " + " | ".join(tail))


def _has_frameworks(python: Path) -> bool:
    names = [requirement.partition("==")[0] for requirement in PEER_FRAMEWORKS]
    probe = (
        "import importlib.metadata as m\n"
        f"for name in {names!r}: print(name + '==' + m.version(name))"
    )
    done = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    return tuple(done.stdout.split()) == PEER_FRAMEWORKS


def ensure_peer_python(venv: Path) -> Path:
    """Return the Python of ``venv`` with the peer (and its frameworks), building it if needed."""
    python = _python_in(venv)
    if _installed_version(python) != _PEER_VERSION:
        _build(venv, python)
    if not _has_frameworks(python):
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        run_step(f"pip install {' '.join(PEER_FRAMEWORKS)}", [*pip, *PEER_FRAMEWORKS])
    return python


def _build(venv: Path, python: Path) -> None:
    print(f"bench: building {venv} with {PEER_REQUIREMENT} ...", file=sys.stderr, flush=True)
    # The same interpreter version as ours, so the peer and we are timed on equal terms;
    # --clear replaces a venv left half-built or holding another version.
    run_step("python -m venv", [sys.executable, "-m", "venv", "--clear", str(venv)])
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run_step(f"pip install {PEER_REQUIREMENT}", [*pip, PEER_REQUIREMENT])
    installed = _installed_version(python)
    if installed != _PEER_VERSION:
        raise PeerEnvError(f"{venv} holds profilis {installed}, expected {_PEER_VERSION}")
