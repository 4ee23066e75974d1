"""Talking to the real control plane in tests: the official ``kubernetes`` client as the
cluster admin, objects built the way a user writes them, helm run against the plane, and
waits that poll a condition with a generous deadline (never a fixed sleep).
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.controlplane import ControlPlane

T = TypeVar("T")

#: A loaded 2-core machine runs the plane, helm and the operator at once: conditions that
#: take a second when idle are given a minute.
WAIT_S = 60.0
#: An image name for the apps: kwok never pulls it, the API server only validates it.
APP_IMAGE = "registry.example/shop:1.0"
PROFILIS_IMAGE = "registry.example/profilis/profilis:2.0.0-test"


def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], what: str, timeout_s: float = WAIT_S
) -> T:
    """Call ``probe`` until ``done(result)``; AssertionError naming ``what`` and the last
    result after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}; last seen: {result!r}")
        time.sleep(0.2)


def slug(text: str, limit: int = 40) -> str:
    """A DNS-1123 label made from ``text`` (a test name)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "x"


@dataclass
class Kube:
    """The admin's view of the plane, through the official client."""

    plane: ControlPlane
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def admission(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self.api)

    @property
    def extensions(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)

    # -- namespaces ------------------------------------------------------------------------

    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """Create ``name`` and wait for its default ServiceAccount (pods need it to be
        admitted, and the controller-manager creates it a moment after the namespace)."""
        body = {"metadata": {"name": name, "labels": dict(labels or {})}}
        self.core.create_namespace(body)
        wait_for(
            lambda: self._exists(
                lambda: self.core.read_namespaced_service_account("default", name)
            ),
            bool,
            f"ServiceAccount default in namespace {name}",
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Start deleting (the namespace controller finishes in the background)."""
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _exists(self, read: Callable[[], object]) -> bool:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- custom resource definitions ---------------------------------------------------------

    def apply_crds(self, files: Iterable[Path]) -> list[str]:
        """Create the CRDs in ``files`` unless present; wait until each is Established."""
        names = []
        for path in files:
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd:
                    continue
                name = crd["metadata"]["name"]
                names.append(name)
                try:
                    self.extensions.create_custom_resource_definition(crd)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
        for name in names:
            self.wait_established(name)
        return names

    def wait_established(self, name: str) -> Any:
        def conditions() -> dict[str, str]:
            try:
                crd = self.extensions.read_custom_resource_definition(name)
            except ApiException as exc:
                if exc.status == 404:
                    return {}
                raise
            return {c.type: c.status for c in (crd.status.conditions or [])}

        return wait_for(
            conditions, lambda c: c.get("Established") == "True", f"CRD {name} Established"
        )

    # -- workloads ---------------------------------------------------------------------------

    def pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def running_pods(
        self, namespace: str, selector: str, count: int, *, injected: bool | None = None
    ) -> list[client.V1Pod]:
        """Wait until exactly ``count`` pods match, all Running and not being deleted (and,
        if ``injected`` is given, all of them injected or none)."""

        def settled(pods: list[client.V1Pod]) -> bool:
            if len(pods) != count:
                return False
            for pod in pods:
                if pod.metadata.deletion_timestamp or pod.status.phase != "Running":
                    return False
                if injected is not None and is_injected(pod) != injected:
                    return False
            return True

        what = f"{count} Running pods {selector} in {namespace}"
        if injected is not None:
            what += " (injected)" if injected else " (not injected)"
        try:
            return wait_for(lambda: self.pods(namespace, selector), settled, what)
        except AssertionError:
            seen = [
                (
                    p.metadata.name,
                    p.status.phase,
                    bool(p.metadata.deletion_timestamp),
                    is_injected(p),
                )
                for p in self.pods(namespace, selector)
            ]
            sets = [
                (r.metadata.name, r.spec.replicas, r.status.replicas, r.status.available_replicas)
                for r in self.apps.list_namespaced_replica_set(namespace).items
            ]
            raise AssertionError(
                f"not within {WAIT_S:.0f} s: {what}; (name, phase, deleting, injected): {seen}; "
                f"ReplicaSets (name, wanted, has, available): {sets}"
            ) from None

    def events(self, namespace: str, reason: str | None = None) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(namespace).items
        return [e for e in items if reason is None or e.reason == reason]

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        secret = self.core.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for the ServiceAccount (TokenRequest), as `kubectl create token` gets."""
        request = {"spec": {"audiences": [], "expirationSeconds": seconds}}
        answer = self.core.create_namespaced_service_account_token(name, namespace, request)
        return str(answer.status.token)


def is_injected(pod: client.V1Pod) -> bool:
    return "profilis.io/status" in (pod.metadata.annotations or {})


#: The ProfilisConfig resource, for the CustomObjectsApi calls.
GROUP, VERSION, PLURAL = "profilis.io", "v1alpha1", "profilisconfigs"


def profilis_config(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A ProfilisConfig as a user writes one."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProfilisConfig",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def deployment(
    name: str,
    *,
    annotations: Mapping[str, str] | None = None,
    replicas: int = 1,
    template_annotations: Mapping[str, str] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Deployment as a user writes one: a Python web app on port 8000."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": dict(annotations or {}), "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": dict(template_annotations or {})},
                "spec": {
                    "containers": list(containers)
                    if containers
                    else [
                        {
                            "name": "app",
                            "image": APP_IMAGE,
                            "command": ["gunicorn", "-w", "2", "-b", "0.0.0.0:8000", "shop:app"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                        }
                    ]
                },
            },
        },
    }


@dataclass(frozen=True)
class HelmCli:
    """The real helm binary, pointed at the plane with the admin's kubeconfig."""

    binary: Path
    kubeconfig: Path

    def run(self, *args: str | Path, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def ok(self, *args: str | Path, timeout_s: float = 180) -> str:
        result = self.run(*args, timeout_s=timeout_s)
        assert result.returncode == 0, (
            f"helm {' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stderr}{result.stdout[-2000:]}"
        )
        return result.stdout
