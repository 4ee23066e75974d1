"""The payload's ``sitecustomize``: the agent starts, the app's own ``sitecustomize`` too.

An app or its image may have a ``sitecustomize`` of its own, later on PYTHONPATH or in
site-packages; the payload's, being first, hides it from Python, so it must run it itself,
under its own name, and fail the way it would have failed without the agent. Likewise an
app that ships ``profilis`` itself keeps its own copy: the payload steps off ``sys.path``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agent.support import Venv, build_venv

APP_SITECUSTOMIZE = """
import os, sys
RAN = True
print("app sitecustomize ran", file=sys.stderr)
"""
REPORT = """
import json, sys
site = sys.modules.get("sitecustomize")
agent = sys.modules.get("profilis.agent")
print(json.dumps({
    "file": getattr(site, "__file__", None),
    "ran": getattr(site, "RAN", False),
    "agent": agent is not None and agent.current_agent() is not None,
}))
"""
WHICH_PROFILIS = """
import json, sys
import profilis
print(json.dumps({"profilis": profilis.__file__, "path": sys.path}))
"""


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A venv with no packages at all: the agent must start on the standard library alone."""
    return build_venv(tmp_path_factory.mktemp("bare") / "venv", ())


def site_packages(venv: Venv) -> Path:
    done = subprocess.run(
        [venv.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip())


def run(venv: Venv, pythonpath: list[Path], code: str = REPORT) -> tuple[dict[str, object], str]:
    env = {"PYTHONPATH": ":".join(str(p) for p in pythonpath)}
    done = venv.run(code, env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_the_apps_sitecustomize_later_on_the_path_runs_too(
    bare_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "sitecustomize.py").write_text(APP_SITECUSTOMIZE)

    report, stderr = run(bare_venv, [payload, app_dir])

    assert report == {"file": str(app_dir / "sitecustomize.py"), "ran": True, "agent": True}
    assert stderr == "app sitecustomize ran\n"


def test_the_images_sitecustomize_in_site_packages_runs_too(payload: Path, tmp_path: Path) -> None:
    venv = build_venv(tmp_path / "venv", ())
    image_site = site_packages(venv) / "sitecustomize.py"
    image_site.write_text(APP_SITECUSTOMIZE)

    report, stderr = run(venv, [payload])

    assert report == {"file": str(image_site), "ran": True, "agent": True}
    assert stderr == "app sitecustomize ran\n"


def test_without_another_sitecustomize_only_the_agent_runs(bare_venv: Venv, payload: Path) -> None:
    # The payload listed twice must not find itself as "the next one".
    report, stderr = run(bare_venv, [payload, payload])

    assert report == {"file": str(payload / "sitecustomize.py"), "ran": False, "agent": True}
    assert stderr == ""


def test_a_failing_app_sitecustomize_fails_as_it_would_without_the_agent(
    bare_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "sitecustomize.py").write_text("raise RuntimeError('broken image')\n")

    _, without_agent = run(bare_venv, [app_dir])
    report, with_agent = run(bare_venv, [payload, app_dir])

    assert with_agent == without_agent
    assert "RuntimeError: broken image" in with_agent
    assert report["agent"] is True  # started before the app's code failed


def test_a_payload_that_cannot_load_logs_one_line_and_the_app_runs(
    bare_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    # Only the bootstrap arrived (a broken copy): no profilis package to start.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sitecustomize.py").write_bytes((payload / "sitecustomize.py").read_bytes())

    report, stderr = run(bare_venv, [broken])

    assert report["agent"] is False
    assert stderr == (
        "profilis: agent off, the app runs uninstrumented: cannot load it: "
        "ModuleNotFoundError(\"No module named 'profilis'\")\n"
    )


def test_an_apps_own_profilis_is_not_shadowed(payload: Path, tmp_path: Path) -> None:
    # An older profilis, without the agent, installed by the app itself.
    venv = build_venv(tmp_path / "venv", ())
    own = site_packages(venv) / "profilis"
    own.mkdir()
    (own / "__init__.py").write_text("VERSION = '1.0.0'\n")

    report, stderr = run(venv, [payload], WHICH_PROFILIS)

    assert report["profilis"] == str(own / "__init__.py")
    assert str(payload) not in report["path"]  # type: ignore[operator]
    assert stderr == (
        "profilis: agent off, the app runs uninstrumented: cannot load it (the app's own "
        "profilis): ModuleNotFoundError(\"No module named 'profilis.agent'\")\n"
    )


def test_an_apps_own_profilis_with_the_agent_runs_it(payload: Path, tmp_path: Path) -> None:
    venv = build_venv(tmp_path / "venv", ())
    own = site_packages(venv) / "profilis"
    shutil.copytree(payload / "profilis", own)

    report, stderr = run(venv, [payload], REPORT)
    which, _ = run(venv, [payload], WHICH_PROFILIS)

    assert report["agent"] is True
    assert which["profilis"] == str(own / "__init__.py")
    assert stderr == ""
