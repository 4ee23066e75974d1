"""Each integration imports its own framework only: the agent must load in any app image."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORKS = {"flask", "werkzeug", "starlette", "fastapi", "sqlalchemy", "opentelemetry"}
# module -> the frameworks importing it may load
OWN = {
    "profilis._http": set(),
    "profilis.wsgi": set(),
    "profilis.asgi": set(),
    "profilis.fastapi": set(),
    "profilis.flask": {"flask", "werkzeug"},
    "profilis.sqlalchemy": {"sqlalchemy"},
}


def packages_loaded_by(module: str) -> set[str]:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in json.loads(done.stdout)}


@pytest.mark.parametrize("module", sorted(OWN))
def test_an_integration_loads_no_other_framework(module):
    loaded = packages_loaded_by(module)
    assert loaded & FRAMEWORKS == OWN[module]
    if not OWN[module]:
        assert {p for p in loaded if p not in sys.stdlib_module_names} == {"profilis"}
