"""The real helm binary for the chart tests: found, fetched when absent, and run.

`scripts/fetch-helm.sh` puts helm v3.18.0 in .tools/bin when no helm is on PATH (exit status 2:
it cannot here, and the tests skip with its message). ``Helm.template`` renders the chart into
a list of manifests; ``Helm.run`` returns the finished process for the tests that look at exit
codes and messages (lint, schema rejections).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "profilis"
SCENARIOS = CHART / "ci"
FETCH_SCRIPT = REPO / "scripts" / "fetch-helm.sh"
PINNED_HELM = REPO / ".tools" / "bin" / "helm"
CANNOT_FETCH_HERE = 2
RELEASE = "profilis"
NAMESPACE = "profilis-system"

Manifest = dict[str, Any]


class HelmUnavailableError(Exception):
    """No helm on PATH and scripts/fetch-helm.sh cannot fetch one here."""


def find_or_fetch_helm() -> Path:
    """The pinned .tools/bin/helm, else helm on PATH, else fetch the pinned one."""
    if PINNED_HELM.is_file():
        return PINNED_HELM
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    result = subprocess.run(
        ["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, timeout=300
    )
    if result.returncode == CANNOT_FETCH_HERE:
        raise HelmUnavailableError(result.stderr.strip())
    if result.returncode != 0 or not PINNED_HELM.is_file():
        raise RuntimeError(f"{FETCH_SCRIPT.name} failed ({result.returncode}):\n{result.stderr}")
    return PINNED_HELM


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *map(str, args)], capture_output=True, text=True, timeout=timeout
        )

    def template_args(
        self,
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        kube_version: str = "1.31",
    ) -> list[str | Path]:
        args: list[str | Path] = [
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
            # The CRD is part of what a user installs: validate it with the rest.
            "--include-crds",
        ]
        for path in values_files:
            args += ["--values", path]
        for assignment in set_values:
            args += ["--set", assignment]
        return args

    def template(
        self,
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        kube_version: str = "1.31",
    ) -> list[Manifest]:
        """The rendered manifests; AssertionError with helm's message if rendering fails."""
        result = self.run(*self.template_args(values_files, set_values, kube_version))
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def scenario_files() -> dict[str, Path]:
    """Scenario name -> values file under charts/profilis/ci/."""
    return {
        path.name.removesuffix("-values.yaml"): path for path in sorted(SCENARIOS.glob("*.yaml"))
    }


def scenarios() -> dict[str, Path | None]:
    """The default values (None) and every ci/ scenario, by name."""
    return {"default": None, **scenario_files()}
