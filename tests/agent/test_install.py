"""``profilis-agent install DIR``: exactly the payload, readable by anyone, replaced whole.

The command runs in-process through ``main`` (one test runs it as ``python -m``, as the
operator's init container would run the console script).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profilis.agent.cli import main
from profilis.agent.install import package_dir

SOURCE = package_dir()


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``root``."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def source_files() -> dict[str, bytes]:
    files = tree(SOURCE)
    return {
        f"profilis/{name}": data
        for name, data in files.items()
        if "__pycache__" not in name and not name.endswith(".pyc")
    }


def install(target: Path, capsys: pytest.CaptureFixture[str], *options: str) -> str:
    assert main(["install", *options, str(target)]) == 0
    out = capsys.readouterr().out
    return out


def test_install_copies_the_package_and_the_bootstrap_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agent"

    out = install(target, capsys)

    assert out == f"{target}\n"  # the PYTHONPATH entry, alone on stdout
    assert sorted(p.name for p in target.iterdir()) == ["profilis", "sitecustomize.py"]
    files = tree(target)
    template = SOURCE / "agent" / "_payload" / "sitecustomize.py"
    assert files.pop("sitecustomize.py") == template.read_bytes()
    assert files == source_files()  # the whole package: no __pycache__, no sidecar/operator
    assert "profilis/agent/bootstrap.py" in files


def test_the_payload_is_readable_by_any_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agent"
    old_umask = os.umask(0o077)  # a strict init container must not lock the app out
    try:
        install(target, capsys)
    finally:
        os.umask(old_umask)

    modes = {stat.S_IMODE(p.stat().st_mode) for p in target.rglob("*") if p.is_file()}
    dir_modes = {stat.S_IMODE(p.stat().st_mode) for p in [target, *target.rglob("*")] if p.is_dir()}
    assert modes == {0o644}
    assert dir_modes == {0o755}


def test_installing_again_into_an_existing_directory_replaces_the_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An emptyDir: the directory exists (a mount point) and may hold other things.
    target = tmp_path / "agent"
    target.mkdir()
    (target / "README").write_text("not ours")
    install(target, capsys)
    first = tree(target)
    (target / "profilis" / "stale.py").write_text("# from an older version")

    install(target, capsys)

    assert tree(target) == first
    assert (target / "README").read_text() == "not ours"
    assert sorted(p.name for p in target.iterdir()) == ["README", "profilis", "sitecustomize.py"]


def test_staging_left_by_an_interrupted_install_is_cleaned_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agent"
    install(target, capsys)
    stale, running = target / ".profilis-agent-dead", target / ".profilis-agent-busy"
    for stage in (stale, running):
        (stage / "profilis").mkdir(parents=True)
    long_ago = time.time() - 3600
    os.utime(stale, (long_ago, long_ago))

    install(target, capsys)

    assert not stale.exists()
    assert running.exists()  # young: maybe a concurrent install's, left alone


def test_compile_adds_bytecode_for_this_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agent"

    install(target, capsys, "--compile")

    tag = sys.implementation.cache_tag
    assert (target / "profilis" / "agent" / "__pycache__" / f"bootstrap.{tag}.pyc").is_file()


def test_a_target_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agent"
    target.write_text("")

    assert main(["install", str(target)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"profilis-agent: cannot install into {target}: {target} exists and is not a directory\n"
    )


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    target = tmp_path / "agent"

    done = subprocess.run(
        [sys.executable, "-m", "profilis.agent.cli", "install", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{target}\n"
    assert "prepend it to PYTHONPATH" in done.stderr
    assert (target / "sitecustomize.py").is_file()
