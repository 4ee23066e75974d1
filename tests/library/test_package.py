"""The package's public surface and its promise to import only the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import profilis

CORE_MODULES = [
    "profilis",
    "profilis.config",
    "profilis.schema",
    "profilis.errors",
    "profilis.runtime",
    "profilis.core",
    "profilis.core.async_collector",
    "profilis.core.emitter",
    "profilis.decorators",
    "profilis.decorators.profile",
]


def test_all_lists_exactly_the_public_names():
    # Submodules become attributes once anything imports them; they are not API names.
    public = {
        name
        for name, value in vars(profilis).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(profilis.__all__) == public | {"__version__"}
    for name in profilis.__all__:
        assert getattr(profilis, name) is not None


def test_importing_the_library_loads_only_the_standard_library():
    # A fresh interpreter: what the injected agent sees in an app image with nothing else.
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"for m in {CORE_MODULES!r}: __import__(m)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    loaded = json.loads(out)
    third_party = [
        m
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "profilis"
    ]
    assert third_party == []


def test_version_is_pep440():
    assert profilis.__version__[0].isdigit()
