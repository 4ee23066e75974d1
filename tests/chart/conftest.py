"""Fixtures of the chart tests: the helm binary and the chart rendered once per scenario.

Scenarios are the default values plus every charts/profilis/ci/*-values.yaml file; each is
rendered for the oldest and a recent Kubernetes version the chart supports, once per session
(a render takes ~0.1 s; the tests that read it are many).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chart.helm import Helm, HelmUnavailableError, Manifest, find_or_fetch_helm

#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion), and one with native
#: sidecars; kubernetes-validate has schemas for both.
KUBE_VERSIONS = ("1.28", "1.31")

Render = Callable[[Path | None, str], list[Manifest]]


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        return Helm(find_or_fetch_helm())
    except HelmUnavailableError as exc:
        pytest.skip(f"no helm on PATH and scripts/fetch-helm.sh cannot fetch it here: {exc}")


@pytest.fixture(scope="session")
def render(helm: Helm) -> Render:
    """render(values_file or None, kube_version) -> manifests, memoised for the session."""
    cache: dict[tuple[Path | None, str], list[Manifest]] = {}

    def rendered(values_file: Path | None, kube_version: str) -> list[Manifest]:
        key = (values_file, kube_version)
        if key not in cache:
            files = [values_file] if values_file else []
            cache[key] = helm.template(files, kube_version=kube_version)
        return cache[key]

    return rendered
