"""The image installs pinned versions: docker/constraints.txt pins, with ==, every runtime
dependency of the operator and sidecar extras (followed transitively), at the version the
test suite runs with, and the Dockerfile installs through it (pip's ``-c``)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.chart.helm import REPO

CONSTRAINTS = REPO / "docker" / "constraints.txt"


def load_script() -> ModuleType:
    path = REPO / "scripts" / "image_constraints.py"
    spec = importlib.util.spec_from_file_location("image_constraints", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()


def test_every_runtime_dependency_is_pinned_at_the_tested_version() -> None:
    tested = SCRIPT.runtime_pins()
    # The walk really follows the tree: direct and transitive dependencies both.
    assert {"kopf", "kubernetes", "aiohttp", "orjson", "prometheus-client"} <= set(tested)
    assert {"urllib3", "multidict", "yarl"} <= set(tested)
    pinned = SCRIPT.read(CONSTRAINTS)
    wrong = {name: (pinned.get(name), version) for name, version in tested.items()
             if pinned.get(name) != version}  # fmt: skip
    assert not wrong, f"(pinned, tested) differ; run scripts/image_constraints.py --write: {wrong}"


def test_every_line_is_an_exact_pin() -> None:
    lines = [
        line for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")
    ]
    loose = [line for line in lines if not re.fullmatch(r"[a-z0-9-]+==[A-Za-z0-9.!+-]+", line)]
    assert lines and not loose, loose


def test_the_dockerfile_installs_through_the_constraints() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY docker/constraints.txt" in dockerfile
    install = re.search(r"pip install ([^\n\\]*)", dockerfile)
    assert install is not None
    assert "--constraint docker/constraints.txt" in install.group(1), install.group(1)
    assert "pip check" in dockerfile


def test_the_check_command_passes_and_a_loosened_pin_is_caught(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "image_constraints.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    loosened = tmp_path / "constraints.txt"
    loosened.write_text(re.sub(r"^kopf==.*$", "kopf==0.0.1", CONSTRAINTS.read_text(), flags=re.M))
    assert SCRIPT.read(loosened)["kopf"] == "0.0.1" != SCRIPT.runtime_pins()["kopf"]
