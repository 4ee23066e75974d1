"""Copying the agent payload into a directory: what the operator's init container runs.

The payload is exactly two entries: the pure-Python ``profilis`` package this code runs from
(no ``__pycache__``, nothing else of the distribution) and the bootstrap ``sitecustomize.py``
(``_payload/sitecustomize.py``). Nothing else lands in DIR, so prepending DIR to
``PYTHONPATH`` can never shadow one of the app's packages. ``profilis.agent.cli`` is the
command line over ``install_payload``.

A half copy is never visible: the payload is staged in a temporary directory and moved into
place by renames. A new DIR appears whole (staged beside it). An existing DIR, typically an
emptyDir mount point that can be neither created nor renamed, gets ``profilis/`` swapped in,
then ``sitecustomize.py`` replaced last, so a bootstrap never runs without its package.
Installing again replaces the payload with a fresh copy: the command is idempotent.
"""

from __future__ import annotations

import compileall
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Final

import profilis
from profilis.errors import ProfilisError

__all__ = ["PAYLOAD_ENTRIES", "InstallError", "install_payload", "package_dir"]

#: Everything the payload puts in DIR.
PAYLOAD_ENTRIES: Final = ("profilis", "sitecustomize.py")
#: Staging directories; the dash keeps them from ever being importable.
_STAGE_PREFIX: Final = ".profilis-agent-"
_IGNORED: Final = ("__pycache__", "*.pyc", "*.pyo")
#: A staging directory untouched this long (seconds) was left by an install that died.
_STALE_STAGE_S: Final = 60.0
#: Compiled extensions would tie the payload to one Python and one libc.
_COMPILED_SUFFIXES: Final = (".so", ".pyd", ".dylib")
# Readable by any user: the app often runs as another user than the init container.
_DIR_MODE: Final = 0o755
_FILE_MODE: Final = 0o644


class InstallError(ProfilisError):
    """The payload cannot be installed (its source or its target is not usable)."""


def package_dir() -> Path:
    """The directory of the ``profilis`` package running now (what the payload copies)."""
    location = Path(profilis.__file__).resolve().parent
    if not (location / "agent" / "_payload" / "sitecustomize.py").is_file():
        raise InstallError(f"no agent payload in {location} (profilis must be a directory)")
    return location


def install_payload(
    target: str | os.PathLike[str], *, source: Path | None = None, compile_bytecode: bool = False
) -> Path:
    """Copy the payload into ``target`` (created if missing); return its absolute path.

    ``source`` is the ``profilis`` package directory to copy (default: ``package_dir()``).
    ``compile_bytecode`` adds ``__pycache__`` for the Python running this: worth it when the
    app runs the same Python version and cannot write them itself (``PYTHONDONTWRITEBYTECODE``
    or a read-only DIR), since each process then compiles the agent at start-up. Another
    Python ignores them.
    """
    package = source if source is not None else package_dir()
    directory = Path(os.path.abspath(target))
    if directory.exists() and not directory.is_dir():
        raise InstallError(f"{directory} exists and is not a directory")
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=directory.parent))
        try:
            _fill(stage, package, compile_bytecode)
            os.chmod(stage, _DIR_MODE)
            os.rename(stage, directory)
            return directory
        except OSError as exc:
            # Another install may have created it meanwhile: then replace its content below.
            if not directory.is_dir():
                raise InstallError(f"cannot create {directory}: {exc}") from exc
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    _replace_in(directory, package, compile_bytecode)
    return directory


def _replace_in(directory: Path, package: Path, compile_bytecode: bool) -> None:
    _remove_stale_stages(directory)
    stage = Path(tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=directory))
    try:
        _fill(stage, package, compile_bytecode)
        new, old = stage / "profilis", directory / "profilis"
        if old.exists() or old.is_symlink():
            # Two renames: a process starting in between finds no package, logs one line
            # and runs uninstrumented; it can never load half of one.
            os.rename(old, stage / "replaced")
        os.rename(new, old)
        os.replace(stage / "sitecustomize.py", directory / "sitecustomize.py")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _fill(stage: Path, package: Path, compile_bytecode: bool) -> None:
    """Put a complete payload into the (empty) directory ``stage``."""
    copied = stage / "profilis"
    shutil.copytree(
        package,
        copied,
        ignore=shutil.ignore_patterns(*_IGNORED),
        copy_function=shutil.copyfile,
    )
    for path in copied.rglob("*"):
        if path.suffix in _COMPILED_SUFFIXES:
            raise InstallError(f"{path.relative_to(stage)} is compiled: the payload must be pure")
    shutil.copyfile(package / "agent" / "_payload" / "sitecustomize.py", stage / "sitecustomize.py")
    if compile_bytecode and not compileall.compile_dir(copied, quiet=1, workers=1):
        raise InstallError(f"compiling the payload in {stage} failed")
    _make_readable(stage)


def _make_readable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), _DIR_MODE)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                os.chmod(path, _FILE_MODE)


def _remove_stale_stages(directory: Path) -> None:
    """Staging directories an interrupted install left behind (not a running one's)."""
    now = time.time()
    for entry in directory.iterdir():
        if not entry.name.startswith(_STAGE_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        if now - entry.stat().st_mtime > _STALE_STAGE_S:
            shutil.rmtree(entry, ignore_errors=True)
