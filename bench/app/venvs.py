"""The third-party variants' virtualenvs under .bench/ (git-ignored), pinned, built on first use.

Each peer gets its own venv so none can shadow our ``profilis`` (Profilis 1.0 has the same
name) or another peer; every venv holds the same framework and server versions as the repo's
.venv, so the apps differ only by their instrumentation. A venv is rebuilt when its pins
change (the list is stamped inside it); pip or uv needs the network only on that first build.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.peer_env import run_step

__all__ = ["FRAMEWORKS", "PINS", "VenvError", "clean_env", "ensure_venv", "venv_exists"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / ".bench"
#: The versions in the repo's .venv (pyproject's dev extra), so plain and peers serve alike.
FRAMEWORKS = (
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "fastapi==0.163.2",
    "starlette==1.10.0",
    "pydantic==2.14.4",
    "gunicorn==27.0.1",
    "uvicorn==0.54.0",
    "httptools==0.9.0",
    "uvloop==0.23.0",
    "sqlalchemy==2.1.9",
)
PINS: dict[str, tuple[str, ...]] = {
    "app-otel": (
        *FRAMEWORKS,
        "opentelemetry-distro==0.66b1",
        "opentelemetry-exporter-otlp-proto-http==1.45.1",
        "opentelemetry-instrumentation-flask==0.66b1",
        "opentelemetry-instrumentation-fastapi==0.66b1",
        # Its SQLAlchemy instrumentation stops short of SQLAlchemy 2.1 ("nothing can be
        # instrumented"), so the query is traced one level down, at sqlite3's DB-API.
        "opentelemetry-instrumentation-sqlite3==0.66b1",
    ),
    "app-prometheus": (
        *FRAMEWORKS,
        "prometheus-client==0.26.0",
        "prometheus-flask-exporter==0.23.2",
        "prometheus-fastapi-instrumentator==8.1.0",
    ),
    # orjson: Profilis 1.0's JSONL exporter uses it when present, as our agent's codec does.
    "app-profilis1": (*FRAMEWORKS, "profilis==1.0.0", "orjson==3.13.0"),
    # The chart's plotting library, kept out of the dev extra.
    "app-report": ("matplotlib==3.11.2",),
}
_STAMP = ".bench-app-pins.txt"
_INSTALL_TIMEOUT_S = 600.0


class VenvError(RuntimeError):
    """A venv could not be built; the message names the step and pip's or uv's last lines."""


def clean_env() -> dict[str, str]:
    """This environment minus what would leak one interpreter's packages into another."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR"}
    return {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith(("PROFILIS_", "OTEL_"))
    }


def venv_exists(name: str) -> bool:
    """Whether ``name`` is built with its current pins (no network needed to use it)."""
    stamp = BENCH_DIR / name / _STAMP
    return stamp.exists() and stamp.read_text() == "\n".join(PINS[name])


def ensure_venv(name: str) -> Path:
    """The ``bin`` folder of venv ``name`` (a key of PINS), building it when needed."""
    venv = BENCH_DIR / name
    if not venv_exists(name):
        print(f"bench-app: building {venv} ({len(PINS[name])} pinned packages)…", flush=True)
        _run("python -m venv", [sys.executable, "-m", "venv", "--clear", str(venv)])
        python = venv / "bin" / "python"
        uv = shutil.which("uv", path=str(Path(sys.executable).parent))
        installer = (
            [uv, "pip", "install", "--python", str(python)]
            if uv
            else [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        )
        _run(f"install into {name}", [*installer, *PINS[name]])
        (venv / _STAMP).write_text("\n".join(PINS[name]))
    return venv / "bin"


def _run(what: str, command: list[str]) -> None:
    run_step(what, command, env=clean_env(), timeout_s=_INSTALL_TIMEOUT_S, error=VenvError)
