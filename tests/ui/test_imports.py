"""The dashboard's modules import only the standard library, except the Flask blueprint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# module -> the third-party packages importing it may load
OWN = {
    "profilis.core.stats": set(),
    "profilis.ui": set(),
    "profilis.ui.asgi": set(),
    "profilis.flask.ui": {
        "flask",
        "werkzeug",
        "jinja2",
        "markupsafe",
        "itsdangerous",
        "click",
        "blinker",
    },
}


@pytest.mark.parametrize("module", sorted(OWN))
def test_a_dashboard_module_loads_only_what_it_must(module):
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    third_party = {p for p in loaded if p not in sys.stdlib_module_names and p != "profilis"}
    assert third_party <= OWN[module]
    if module == "profilis.flask.ui":
        assert "flask" in third_party
