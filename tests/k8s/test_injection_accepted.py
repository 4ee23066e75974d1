"""Every pod the injection produces is one the real API server stores: the patch of the one
pure function (``profilis_operator.injection.inject``) is applied to real pod shapes, with and
without native sidecars, and created with dryRun=All, which runs the API server's whole
validation and admission chain without storing anything. The old port name
("profilis-metrics", 16 characters) failed every one of these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest
from kubernetes.client.rest import ApiException

from profilis_operator.effective_config import resolve
from profilis_operator.injection import ClusterCapabilities, inject
from tests.k8s.kube import Kube
from tests.operator.pods import pod, several_containers, with_init_containers

SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    "one container": pod,
    "several containers": several_containers,
    "its own init containers": with_init_containers,
}
CONFIGS = {
    "defaults": {},
    "every section": {
        "serviceName": "checkout",
        "sampling": {"rate": 0.5, "excludedRoutes": ["/healthz"]},
        "collector": {"queueSize": 4096, "batchMax": 256},
        "exporters": {"enabled": ["prometheus", "otlp"], "otlpEndpoint": "http://otel:4318"},
        "sidecar": {
            "metricsPort": 9090,
            "resources": {"requests": {"cpu": "20m"}, "limits": {"memory": "160Mi"}},
        },
    },
}


@pytest.mark.parametrize("native", [True, False], ids=["native-sidecar", "ordinary-container"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_injected_pod_is_accepted_by_the_api_server(
    kube: Kube, namespace: str, shape: str, config: str, native: bool
) -> None:
    original = SHAPES[shape]()
    original["metadata"].pop("ownerReferences")  # no such ReplicaSet here
    original["metadata"]["namespace"] = namespace
    injection = inject(original, resolve(CONFIGS[config]), ClusterCapabilities(native))
    assert injection.injected, injection.message
    patched = jsonpatch.apply_patch(original, injection.patch)
    try:
        stored = kube.core.create_namespaced_pod(namespace, patched, dry_run="All")
    except ApiException as exc:
        pytest.fail(f"the API server refused the injected pod ({exc.status}): {exc.body}")
    sidecars = [
        c
        for c in [*(stored.spec.init_containers or []), *stored.spec.containers]
        if c.name == "profilis-sidecar"
    ]
    (sidecar,) = sidecars
    assert sidecar.ports[0].name == "profilis-http"
    assert (sidecar.restart_policy == "Always") is native
