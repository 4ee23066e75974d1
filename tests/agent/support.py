"""What the agent tests share: fresh app virtualenvs, the installed payload, app processes.

A fresh virtualenv holds only an app's dependencies (pinned as in our dev extra; uv's cache
makes building one take well under a second), never profilis: the agent reaches the app
through ``PYTHONPATH`` alone, as in an injected pod. Sidecars and /metrics come from the
sidecar tests' helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

APPS_DIR = Path(__file__).resolve().parent / "apps"
#: The app image's own sitecustomize (a directory to put on PYTHONPATH after the payload).
APP_SITE_DIR = APPS_DIR / "app_site"

# The same pins as the dev extra in pyproject.toml, so uv finds them all in its cache.
FLASK_STACK = ("flask==3.1.3", "gunicorn==27.0.1", "sqlalchemy==2.1.9")
ASGI_STACK = (
    "fastapi==0.163.2",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "gunicorn==27.0.1",
    "sqlalchemy==2.1.9",
)
#: SQLAlchemy's asyncio extension needs greenlet (2.1 no longer installs it): only the ASGI
#: app, which uses an async engine, carries it; the Flask venv proves sync apps need none.
GREENLET = "greenlet==3.5.6"
CLIENT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(
        self, code: str, env: Mapping[str, str], timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """``python -c code`` in this venv, from a neutral directory, output captured."""
        return subprocess.run(
            [self.python, "-c", code],
            env=clean_env(env),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def uv() -> str:
    """uv, as ``make setup`` installs it into our venv (or from PATH)."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is needed to build the app venvs: run `make setup`")
    return found


def build_venv(root: Path, requirements: Sequence[str]) -> Venv:
    """A new virtualenv at ``root`` with ``requirements`` (from uv's cache when it can)."""
    subprocess.run(
        [uv(), "venv", "--quiet", "--python", sys.executable, str(root)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # Bytecode now, once: every app process would compile SQLAlchemy again otherwise, as
    # PYTHONDONTWRITEBYTECODE is often set (in CI, in images).
    install = [uv(), "pip", "install", "--quiet", "--compile-bytecode"]
    install += ["--python", str(root / "bin" / "python")]
    if not requirements:
        return Venv(root)
    offline = subprocess.run(
        [*install, "--offline", *requirements], capture_output=True, text=True, timeout=120
    )
    if offline.returncode != 0:  # not all in the cache yet: let uv download them
        subprocess.run([*install, *requirements], check=True, capture_output=True, timeout=300)
    return Venv(root)


def install_payload(directory: Path) -> Path:
    """``profilis-agent install DIR`` from our venv; returns the PYTHONPATH entry it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "profilis.agent.cli", "install", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


#: Variables of the test run that must not reach an app process.
_HIDDEN = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def _hidden(name: str) -> bool:
    return name.startswith("PROFILIS_") or name in _HIDDEN


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Our environment without PROFILIS_*, PYTHONPATH and venv variables, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not _hidden(name)}
    env.update(extra)
    return env


def app_env(payload: Path, *pythonpath: Path | str, **settings: str) -> dict[str, str]:
    """What the operator gives an app container: the payload first on PYTHONPATH, settings.

    For ``run_process``, which starts from ``os.environ``: variables to hide are set blank
    (Python and profilis.config both take a blank variable as unset).
    """
    env = {name: "" for name in os.environ if _hidden(name)}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (payload, *pythonpath))
    env.update(settings)
    return env


def create_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.execute("INSERT INTO users (id, name) VALUES (1, 'ada'), (7, 'grace')")
    return path


def fire(
    base_url: str,
    paths: Iterable[str],
    *,
    concurrency: int = 8,
    headers: Mapping[str, str] | None = None,
) -> list[httpx.Response]:
    """GET every path, ``concurrency`` at a time; responses in the order of ``paths``."""

    def get(path: str) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as client:
            return client.get(path, headers=headers)

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(get, paths))


def children_of(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children.update(int(child) for child in task.read_text().split())
    return children


def profilis_lines(output: str) -> list[str]:
    """The lines the agent logged (its own prefix)."""
    return [line for line in output.splitlines() if line.startswith("profilis:")]


def read_jsonl_events(directory: Path) -> list[dict[str, Any]]:
    """Every event in a JSONL exporter directory: final files and the ones still written."""
    events = []
    for path in sorted(directory.glob("*.jsonl*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:  # the last line of an active file, being written right now
                continue
            if event.get("kind") != "header":
                events.append(event)
    return events
