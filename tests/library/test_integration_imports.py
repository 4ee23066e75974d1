"""The Sanic, pyodbc, MongoDB and Neo4j integrations import their own library only, if any.

The pyodbc and Neo4j modules import nothing beyond the standard library (they work on the
objects given to them), so an app without SQLAlchemy still gets redacted statements.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# module -> the library it is built on (None: the standard library only)
OWN = {
    "profilis._sql": None,
    "profilis._db": None,
    "profilis.pyodbc": None,
    "profilis.neo4j": None,
    "profilis.neo4j.cypher": None,
    "profilis.mongo": "pymongo",
    "profilis.sanic": "sanic",
}
FRAMEWORKS = {"flask", "starlette", "fastapi", "sqlalchemy", "pyodbc", "neo4j", "pymongo", "sanic"}


def third_party_loaded_by(module: str) -> set[str]:
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
    return {name for name in loaded if name not in sys.stdlib_module_names} - {"profilis"}


@pytest.mark.parametrize("module", sorted(OWN))
def test_an_integration_loads_only_its_own_library(module: str) -> None:
    loaded = third_party_loaded_by(module)
    own = OWN[module]
    if own is None:
        assert loaded == set()
    else:  # its library, and what that brings, but no other framework
        assert own in loaded
        assert loaded & FRAMEWORKS == {own}
