"""The README's library examples, as a reader would use them.

The two ```python blocks of "Without Kubernetes" must be ``examples/flask_app.py`` and
``examples/fastapi_app.py`` byte for byte; each runs under the server command the README
gives (gunicorn, uvicorn; only the port changed), from a copy of ``examples/`` so the
checkout gets no ``profilis-logs``, and a few requests must show in what the README tells
the reader to look at: the JSON-lines files, ``/metrics`` and the dashboard's
``metrics.json``.

The examples run twice: in the project's ``.venv`` (nothing installed), and in a fresh
virtualenv made by the README's own ``python -m pip install '.[...]' ...`` lines. Those are
run with ``uv pip install --offline`` (uv is in ``.venv``: ``make setup`` installs it): the
same requirement strings, resolved from the wheels ``make setup`` left in uv's cache, so the
test needs no network and takes about a second, where pip would need an index. The checkout
is built into a wheel on the way (hatchling), so this also proves the wheel's metadata: its
version, ``License-Expression: MIT`` and the LICENSE file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from profilis import __version__
from tests.support.processes import free_port, run_process

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
EXAMPLES = REPO_ROOT / "examples"
#: The port of the README's commands, replaced by a free one.
README_PORT = "8000"
#: Every wait of these tests is bounded.
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Example:
    file: str
    server: str  # the program of its README command
    route: str  # the template its events and metrics carry for /orders/42


FLASK = Example("flask_app.py", "gunicorn", "/orders/<int:order_id>")
FASTAPI = Example("fastapi_app.py", "uvicorn", "/orders/{order_id}")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def shell_lines(starting: str) -> list[str]:
    """The README's shell commands that start with ``starting``, comments dropped."""
    lines = (
        line.partition("  #")[0].strip()
        for block in code_blocks("sh")
        for line in block.splitlines()
    )
    return [line for line in lines if line.startswith(starting)]


def test_the_readme_shows_each_example_byte_for_byte() -> None:
    blocks = code_blocks("python")
    for example in (FLASK, FASTAPI):
        assert (EXAMPLES / example.file).read_text() in blocks, f"README lacks {example.file}"


def test_the_readme_says_not_to_install_profilis_by_name() -> None:
    assert "`pip install profilis` by name installs Profilis 1.0.0" in README
    assert "CPython 3.10, 3.11, 3.12 and 3.13" in README
    assert "pip install 'profilis[flask" not in README


def test_the_readme_lists_every_extra_of_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", README, flags=re.MULTILINE)

    assert sorted(listed) == sorted(extras)


def server_argv(example: Example, bin_dir: Path, port: int) -> list[str]:
    """The README's command for ``example``, run with the programs of ``bin_dir``."""
    module = example.file.removesuffix(".py")
    (command,) = [line for line in shell_lines(f"{example.server} ") if f"{module}:app" in line]
    argv = shlex.split(command)
    assert README_PORT in command and "127.0.0.1" in command  # never all interfaces in tests
    return [str(bin_dir / argv[0]), *(arg.replace(README_PORT, str(port)) for arg in argv[1:])]


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {TIMEOUT_S} s")
        time.sleep(0.05)


def logged_events(logs: Path) -> list[dict[str, object]]:
    events = []
    for path in sorted(logs.glob("*.jsonl*")):
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line being written is not one yet
                events.append(json.loads(line))
    return events


def run_example(example: Example, bin_dir: Path, workdir: Path) -> None:
    """Serve ``example`` as the README says, send three requests, and check what they left."""
    shutil.copy(EXAMPLES / example.file, workdir)
    port = free_port()
    # HOME: gunicorn's control socket goes to ~/.gunicorn; keep it out of the real home.
    env = {"HOME": str(workdir), "PYTHONPATH": ""}
    argv = server_argv(example, bin_dir, port)
    with (
        run_process(argv, env=env, cwd=workdir, port=port, ready_timeout=30),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT_S) as client,
    ):
        assert client.get("/orders/42").json() == {"id": 42, "status": "shipped"}
        assert client.get("/orders/7").status_code == 200
        assert client.get("/no-such-page").status_code == 404

        logs = workdir / "profilis-logs"
        wait_for(lambda: len(logged_events(logs)) >= 4, "3 requests in the JSON-lines files")
        header, *events = logged_events(logs)  # one process: one file
        assert header["kind"] == "header" and header["service"] == "shop"
        assert len(events) == 3
        orders = [e for e in events if e.get("route") == example.route]
        assert [(e["method"], e["status"]) for e in orders] == [("GET", 200)] * 2

        series = (
            f'profilis_http_requests_total{{method="GET",route="{example.route}",'
            'service="shop",status="200"} 2.0'
        )
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert series in metrics.text
        assert 'route="/metrics"' not in metrics.text  # excluded, as written

        dashboard = client.get("/_profilis/metrics.json").json()
        routes = {(row["method"], row["route"]): row["count"] for row in dashboard["routes"]}
        assert routes[("GET", example.route)] == 2


@pytest.mark.slow
@pytest.mark.parametrize("example", [FLASK, FASTAPI], ids=["flask-gunicorn", "fastapi-uvicorn"])
def test_an_example_runs_as_written_in_the_project_venv(example: Example, tmp_path: Path) -> None:
    run_example(example, Path(sys.executable).parent, tmp_path)


@pytest.fixture(scope="module")
def readme_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv holding what the README's install lines install; its ``bin``."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.skip(f"no {uv}: `make setup` installs it")
    venv = tmp_path_factory.mktemp("readme-venv") / "venv"
    subprocess.run(
        [uv, "venv", "--offline", "--quiet", "--python", sys.executable, venv],
        check=True,
        timeout=60,
    )
    install_lines = shell_lines("python -m pip install '.[")
    assert len(install_lines) >= 2, install_lines  # one in "Install", one per example
    for line in install_lines:
        requirements = shlex.split(line)[4:]
        done = subprocess.run(
            [uv, "pip", "install", "--offline", "--python", venv / "bin" / "python", *requirements],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "VIRTUAL_ENV": ""},
        )
        if done.returncode != 0 and "network was disabled" in done.stderr:
            pytest.skip(f"`{line}` needs wheels uv has not cached here: {done.stderr.strip()}")
        assert done.returncode == 0, done.stderr
        assert "does not have an extra" not in done.stderr, done.stderr
    yield venv / "bin"


@pytest.mark.slow
def test_the_readme_install_line_installs_this_checkout(readme_venv: Path) -> None:
    probe = (
        "import importlib.metadata as m, json, profilis\n"
        "d = m.distribution('profilis')\n"
        "print(json.dumps({'file': profilis.__file__, 'version': d.version,\n"
        "  'license': d.metadata['License-Expression'],\n"
        "  'license_text': next(f for f in d.files if f.name == 'LICENSE').read_text(),\n"
        "  'fastapi': m.version('fastapi'), 'requires': d.requires}))\n"
    )
    done = subprocess.run(
        [readme_venv / "python", "-I", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = json.loads(done.stdout)

    assert Path(installed["file"]).is_relative_to(readme_venv.parent)  # a copy, not the checkout
    assert installed["version"] == __version__  # 2.x from here, never 1.0.0 from the index
    assert installed["license"] == "MIT"
    assert installed["license_text"] == (REPO_ROOT / "LICENSE").read_text()
    assert any(
        r.startswith("fastapi>=") and "extra == 'fastapi'" in r for r in installed["requires"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("example", [FLASK, FASTAPI], ids=["flask-gunicorn", "fastapi-uvicorn"])
def test_an_example_runs_as_written_after_the_readme_install(
    example: Example, readme_venv: Path, tmp_path: Path
) -> None:
    run_example(example, readme_venv, tmp_path)
