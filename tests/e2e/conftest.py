"""The kind end-to-end suite's fixtures: a cluster, the images loaded into it, the chart.

Runs where Docker, kind and kubectl are available and ``PROFILIS_E2E_KIND=1`` is set
(``make e2e-kind`` sets it: a cluster and two image builds take minutes, too long for every
``make test``); skipped with the reason everywhere else. Knobs, all optional:
``PROFILIS_E2E_CLUSTER`` (use this existing kind cluster instead of creating one),
``PROFILIS_E2E_NODE_IMAGE`` (kindest/node image of a created cluster),
``PROFILIS_E2E_KEEP=1`` (leave the created cluster for inspection).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.helm import CHART, REPO, HelmUnavailableError, find_or_fetch_helm
from tests.e2e.kind import Cluster, docker_unavailable, run

PROFILIS_IMAGE = "profilis/profilis:e2e"
DEMO_IMAGE = "profilis-demo:e2e"
DEMO_DIR = REPO / "examples" / "demo-app"
RELEASE, RELEASE_NAMESPACE = "profilis", "profilis-system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest hook sees the whole session's items: act on the kind suite's only.
    kind_suite = Path(__file__).with_name("test_kind.py")
    selected = [item for item in items if Path(str(item.fspath)) == kind_suite]
    if not selected:
        return
    reason = docker_unavailable()
    if reason is None and os.environ.get("PROFILIS_E2E_KIND") != "1":
        reason = "the kind suite runs with `make e2e-kind` (PROFILIS_E2E_KIND=1): it takes minutes"
    if reason is not None:
        skip = pytest.mark.skip(reason=f"kind end-to-end suite skipped: {reason}")
        for item in selected:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        helm_binary = find_or_fetch_helm()
    except HelmUnavailableError as exc:
        pytest.skip(f"kind end-to-end suite skipped: no helm ({exc})")
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    existing = os.environ.get("PROFILIS_E2E_CLUSTER")
    name = existing or f"profilis-e2e-{uuid.uuid4().hex[:6]}"
    if existing:
        run(
            ["kind", "export", "kubeconfig", "--name", name, "--kubeconfig", kubeconfig], timeout=60
        )
    else:
        argv: list[str | Path] = ["kind", "create", "cluster", "--name", name]
        argv += ["--kubeconfig", kubeconfig, "--wait", "180s"]
        if node_image := os.environ.get("PROFILIS_E2E_NODE_IMAGE"):
            argv += ["--image", node_image]
        run(argv, timeout=600)
    try:
        yield Cluster(name, kubeconfig, helm_binary)
    finally:
        if not existing and os.environ.get("PROFILIS_E2E_KEEP") != "1":
            run(["kind", "delete", "cluster", "--name", name], timeout=300)


@pytest.fixture(scope="session")
def images(cluster: Cluster) -> dict[str, str]:
    """The Profilis image (Dockerfile at the root) and the demo app's, loaded into kind."""
    run(["docker", "build", "--tag", PROFILIS_IMAGE, REPO], timeout=1200)
    run(["docker", "build", "--tag", DEMO_IMAGE, DEMO_DIR], timeout=900)
    for image in (PROFILIS_IMAGE, DEMO_IMAGE):
        cluster.load_image(image)
    return {"profilis": PROFILIS_IMAGE, "demo": DEMO_IMAGE}


@pytest.fixture(scope="session")
def release(cluster: Cluster, images: dict[str, str]) -> Iterator[str]:
    """The chart installed with the image just built; no Prometheus Operator in kind."""
    repository, _, tag = images["profilis"].rpartition(":")
    cluster.helm(
        "install", RELEASE, CHART,
        "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--values", CHART / "ci" / "monitoring-off-values.yaml",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        # Loaded into the nodes by kind: never pulled.
        "--set", "image.pullPolicy=Never",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    try:
        yield RELEASE
    finally:
        # Matters on a reused cluster (PROFILIS_E2E_CLUSTER): the next run installs again.
        cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait")
