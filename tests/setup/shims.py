"""PATH shims for the tests of the setup scripts (scripts/apt-install.sh and its callers).

A test runs a script with PATH set to one scratch directory: stand-ins for ``id`` and
``apt-get`` plus links to the few real tools the scripts use, so nothing on the machine is
installed, and a missing tool really is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APT_INSTALL = REPO / "scripts" / "apt-install.sh"
CANNOT_INSTALL_HERE = 2
LOCK_HELD_TOO_LONG = 3
#: The real tools the setup scripts call besides bash builtins.
BASICS = ("dirname", "stat", "awk", "cat", "sleep", "ls", "touch", "chmod")
#: Found before PATH is replaced: the scripts run under the machine's bash.
BASH = shutil.which("bash") or "/bin/bash"


def fake_bin(directory: Path, commands: dict[str, str], *, uid: int = 0) -> Path:
    """A PATH directory: an ``id`` answering ``uid``, the basics, and ``commands`` as scripts."""
    directory.mkdir()
    for tool in BASICS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed to run the setup scripts"
        (directory / tool).symlink_to(found)
    for name, body in {"id": f"echo {uid}", **commands}.items():
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return directory


def fake_apt_get(log: Path, *, on_install: str = "", status: int = 0) -> str:
    """An ``apt-get`` that logs each call's arguments to ``log`` and exits ``status``.

    ``--print-uris`` answers one 2 MB package; a real ``install`` runs ``on_install``.
    """
    return (
        f'echo "$*" >> {log}\n'
        'case "$*" in\n'
        "  *--print-uris*) echo \"'http://deb.example/p.deb' p.deb 2000000 SHA256:00\" ;;\n"
        f"  install*) {on_install or ':'} ;;\n"
        "esac\n"
        f"exit {status}"
    )


def run(
    script: Path, path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(script), *args],
        env={"PATH": str(path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
