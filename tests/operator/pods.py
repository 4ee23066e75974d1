"""Real pod and workload specs for the operator tests (what kubectl would send)."""

from __future__ import annotations

import copy
from typing import Any

FLASK_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "shop-7c9f8d6b54-",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "shop", "pod-template-hash": "7c9f8d6b54"},
        "annotations": {"profilis.io/inject": "true"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "shop-7c9f8d6b54",
                "uid": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "registry.example/shop:1.4.2",
                "command": ["gunicorn", "--workers", "4", "--bind", "0.0.0.0:8000", "app:app"],
                "ports": [{"name": "http", "containerPort": 8000}],
                "env": [{"name": "APP_ENV", "value": "production"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }
        ]
    },
}


def pod(**changes: Any) -> dict[str, Any]:
    """A deep copy of FLASK_POD; ``spec``/``metadata`` keys given here replace its own."""
    result = copy.deepcopy(FLASK_POD)
    for key, value in changes.items():
        section = "metadata" if key in ("annotations", "labels", "name", "namespace") else "spec"
        result[section][key] = value
    return result


def several_containers() -> dict[str, Any]:
    result = pod()
    result["metadata"]["annotations"]["profilis.io/container-names"] = "web,worker,nope"
    result["spec"]["containers"].append(
        {
            "name": "worker",
            "image": "registry.example/shop:1.4.2",
            "command": ["celery", "-A", "app", "worker"],
            "env": [{"name": "PYTHONPATH", "value": "/srv/lib:/srv/app"}],
        }
    )
    result["spec"]["containers"].append({"name": "proxy", "image": "envoyproxy/envoy:v1.31"})
    return result


def with_init_containers() -> dict[str, Any]:
    result = pod()
    result["spec"]["initContainers"] = [
        {
            "name": "migrate",
            "image": "registry.example/shop:1.4.2",
            "command": ["flask", "db", "upgrade"],
        }
    ]
    result["spec"]["volumes"] = [{"name": "cache", "emptyDir": {}}]
    result["spec"]["containers"][0]["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    return result


def python_path_from_secret() -> dict[str, Any]:
    result = pod()
    result["spec"]["containers"][0]["env"].append(
        {
            "name": "PYTHONPATH",
            "valueFrom": {"secretKeyRef": {"name": "paths", "key": "pythonpath"}},
        }
    )
    return result


def deployment(
    name: str, namespace: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    template = copy.deepcopy(FLASK_POD)
    template["metadata"] = {"labels": {"app.kubernetes.io/name": name}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": annotations or {},
            "resourceVersion": "1",
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": template,
        },
    }


def review(
    obj: Any,
    *,
    namespace: str = "shop",
    uid: str = "7f1b2c3d-0000-4000-8000-000000000001",
    **request: Any,
) -> dict[str, Any]:
    """An AdmissionReview as the API server sends it for a pod CREATE."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            **request,
        },
    }


WEBHOOK_CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def webhook_configuration(name: str = "profilis") -> dict[str, Any]:
    """As the chart renders it in selfSigned mode: no caBundle until the operator sets one."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"pods.{name}",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {
                    "service": {
                        "name": "profilis-webhook",
                        "namespace": "profilis-system",
                        "path": "/mutate-pods",
                        "port": 443,
                    }
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "timeoutSeconds": 5,
            }
        ],
    }


def config(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A ProfilisConfig in namespace shop."""
    return {
        "apiVersion": "profilis.io/v1alpha1",
        "kind": "ProfilisConfig",
        # kmock keeps whatever resourceVersion it is given; kopf's status patches test it.
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
        "spec": spec,
    }
