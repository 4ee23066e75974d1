"""Chart.yaml and the image: versions follow the package, images are pinned by tag, and the
image the chart runs is the one the operator injects by default."""

from __future__ import annotations

import re

import yaml

from profilis import __version__
from profilis.k8s import DEFAULT_IMAGE_REPOSITORY
from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import CHART
from tests.chart.manifests import containers, pod_specs

CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# SemVer 2.0.0's grammar (semver.org), which Helm requires of a chart's version.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def semver_of(pep440: str) -> str:
    """PEP 440 -> SemVer for the release segments Profilis uses: 2.0.0, 2.0.0.dev0, 2.0.0rc1."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:\.?(dev|a|b|rc)(\d+))?", pep440)
    assert match, f"unexpected package version {pep440!r}"
    release, phase, number = match.groups()
    return release if phase is None else f"{release}-{phase}.{number}"


def test_app_version_is_the_package_version() -> None:
    assert CHART_YAML["appVersion"] == __version__


def test_chart_version_is_the_semver_spelling_of_the_package_version() -> None:
    assert SEMVER.match(CHART_YAML["version"])
    assert CHART_YAML["version"] == semver_of(__version__)


def test_semver_of_spells_pre_releases_as_semver_orders_them() -> None:
    assert semver_of("2.0.0") == "2.0.0"
    assert semver_of("2.0.0.dev0") == "2.0.0-dev.0"
    assert semver_of("2.1.0rc2") == "2.1.0-rc.2"


def test_the_chart_supports_the_kubernetes_versions_it_is_tested_on() -> None:
    assert CHART_YAML["kubeVersion"] == f">={KUBE_VERSIONS[0]}.0-0"


def test_the_default_image_is_the_operators_default_repository_at_app_version(
    render: Render,
) -> None:
    assert VALUES["image"]["repository"] == DEFAULT_IMAGE_REPOSITORY
    assert VALUES["image"]["tag"] == "", "an empty tag follows appVersion"
    expected = f"{DEFAULT_IMAGE_REPOSITORY}:{__version__}"
    for where, pod in pod_specs(render(None, KUBE_VERSIONS[-1])):
        for container in containers(pod):
            assert container["image"] == expected, where
