"""The plane itself: the version it claims, a Deployment that really rolls out (controller-
manager, scheduler, kwok), RBAC that really refuses, and a stop that ends exactly what it
started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.k8s.kube import Kube, deployment
from tests.support.controlplane import NODE_NAME, ControlPlane, running


def test_the_api_server_is_kubernetes_1_34(kube: Kube) -> None:
    version = client.VersionApi(kube.api).get_code()
    assert version.git_version == "v1.34.4"
    assert (version.major, version.minor) == ("1", "34")


def test_a_deployment_rolls_out_onto_the_fake_node(kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    pods = kube.running_pods(namespace, "app=web", 2)
    assert {pod.spec.node_name for pod in pods} == {NODE_NAME}
    assert all(pod.status.pod_ip.startswith("127.") for pod in pods)


def test_rbac_is_enforced_for_a_service_account(kube: Kube, namespace: str, tmp_path: Path) -> None:
    token = kube.service_account_token(namespace, "default")
    path = kube.plane.write_kubeconfig(tmp_path / "sa.kubeconfig", user="sa", token=token)
    api = config.new_client_from_config(config_file=str(path))
    try:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_secret(namespace)
        assert refused.value.status == 403
        assert f"system:serviceaccount:{namespace}:default" in str(refused.value.body)
    finally:
        api.close()


@pytest.mark.slow
def test_stopping_a_plane_ends_exactly_its_processes(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with running(control_plane.assets, tmp_path) as second:
        pids = second.pids
        assert len(pids) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    for pid in pids:
        assert not _alive(pid), f"process {pid} of the stopped plane still runs"
    # The session's plane is untouched.
    assert len(control_plane.pids) == 5
    assert all(_alive(pid) for pid in control_plane.pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: only its parent's wait() is missing.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))
