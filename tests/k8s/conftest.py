"""Fixtures of the tests on a real Kubernetes control plane (tests/support/controlplane.py).

One plane for this package's tests, started on first use and stopped after the last of them
(exactly the processes it started), so it is not running while the rest of the suite does.
Where there is no Go toolchain the tests skip with one line; where Go is present but the
binaries are not built, they fail and say how to build them (`make test` builds them first).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import config

from tests.chart.helm import HelmUnavailableError, find_or_fetch_helm
from tests.k8s.kube import HelmCli, Kube, slug
from tests.k8s.operator import LocalOperator, operator_release
from tests.support.controlplane import ControlPlane, assets_or_reason, running

#: The Prometheus Operator and cert-manager CRDs the chart's objects need (of the ones
#: scripts/build-control-plane.sh generates or fetches).
THIRD_PARTY_CRDS = (
    "monitoring.coreos.com_podmonitors.yaml",
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
)


@pytest.fixture(scope="package")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    assets, reason = assets_or_reason()
    if assets is None:
        if shutil.which("go") is None:
            pytest.skip(reason)
        pytest.fail(reason)
    with running(assets, tmp_path_factory.mktemp("k8s")) as plane:
        print(f"\ncontrol plane ready in {plane.started_s:.1f} s at {plane.server}")
        yield plane


@pytest.fixture(scope="package")
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    api = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    try:
        yield Kube(control_plane, api)
    finally:
        api.close()


@pytest.fixture(scope="package")
def third_party_crds(kube: Kube) -> list[str]:
    """The real CRDs of the Prometheus Operator and cert-manager, Established."""
    crds = kube.plane.assets / "crds"
    return kube.apply_crds(crds / name for name in THIRD_PARTY_CRDS)


@pytest.fixture(scope="package")
def helm(control_plane: ControlPlane) -> HelmCli:
    try:
        binary = find_or_fetch_helm()
    except HelmUnavailableError as exc:
        pytest.fail(f"helm is needed for the chart on the control plane: {exc}")
    return HelmCli(binary, control_plane.admin_kubeconfig)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards."""
    name = kube.namespace(f"{slug(request.node.originalname, 50)}-{uuid.uuid4().hex[:6]}")
    yield name
    kube.delete_namespace(name)


@pytest.fixture(scope="module")
def operator(
    kube: Kube,
    helm: HelmCli,
    third_party_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalOperator]:
    """The chart installed for an out-of-cluster operator, and that operator running here
    with the chart's identity; uninstalled when the module is done."""
    workdir = tmp_path_factory.mktemp("operator")
    with operator_release(kube, helm, "profilis", "profilis-system", workdir) as local:
        yield local
