"""Running Profilis' console scripts as a user would, optionally with modules made missing.

``run_command`` starts the installed script (``.venv/bin/profilis-sidecar``, say) in a fresh
process. ``missing`` makes modules unimportable the way an absent extra would: a
``sitecustomize`` on ``PYTHONPATH`` puts a finder first on ``sys.meta_path`` that raises
``ModuleNotFoundError`` for them, so nothing is uninstalled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_command"]

_BLOCKER = """
import os, sys

_MISSING = frozenset(os.environ["PROFILIS_TEST_MISSING_MODULES"].split(","))


class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _MISSING:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
"""


def run_command(
    command: str,
    argv: Sequence[str] = (),
    *,
    missing: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the console script ``command`` from this interpreter's ``bin``; never raises on
    a non-zero exit. ``env`` replaces the environment (PATH is kept)."""
    script = Path(sys.executable).parent / command
    environ = {"PATH": os.environ.get("PATH", ""), **(env if env is not None else os.environ)}
    with tempfile.TemporaryDirectory(prefix="profilis-missing-") as site_dir:
        if missing:
            Path(site_dir, "sitecustomize.py").write_text(_BLOCKER)
            environ["PYTHONPATH"] = site_dir
            environ["PROFILIS_TEST_MISSING_MODULES"] = ",".join(missing)
        return subprocess.run(
            [str(script), *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=site_dir,
        )
