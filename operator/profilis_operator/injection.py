"""The one pure function from (pod, effective config, cluster capabilities) to the injection.

``inject`` is what the webhook, the demo, the pod runner's tests and the benchmarks all call:
it reads a pod (a plain dict, as in an AdmissionReview) and returns an ``Injection`` with the
JSON patch (RFC 6902), or the reason it left the pod alone. The patch is diffed (``jsonpatch``)
only where a pod changes: the instrumented containers; what is appended (volumes, containers)
and the status annotation are plain "add" operations. It does
no I/O, reads no clock and no environment. Who opts in (annotations, namespace labels) is
decided before it, in ``profilis_operator.policy``; what a pod gets is decided here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch
import jsonpointer

from profilis import __version__
from profilis.config import DEFAULT_COLLECTOR_ADDRESS
from profilis.k8s import (
    AGENT_MOUNT_PATH,
    AGENT_VOLUME,
    ANNOTATION_CONTAINER_NAMES,
    ANNOTATION_STATUS,
    INIT_CONTAINER_NAME,
    METRICS_PORT_NAME,
    SIDECAR_CONTAINER_NAME,
    SOCKET_DIR,
    SOCKET_VOLUME,
)
from profilis_operator.effective_config import InjectionConfig

__all__ = ["ClusterCapabilities", "Injection", "agent_env", "inject", "service_name_of"]

#: The non-root user of the Profilis image (distroless' "nonroot").
_NON_ROOT_ID: Final = 65532
_SECURITY_CONTEXT: Final = {
    "runAsNonRoot": True,
    "runAsUser": _NON_ROOT_ID,
    "runAsGroup": _NON_ROOT_ID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_DOWNWARD_API: Final = (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"))
# The pod-template-hash a ReplicaSet puts into its pods' names: "web-5d8f7b9c4-" -> "web".
_TEMPLATE_HASH_SUFFIX: Final = re.compile(r"-[a-z0-9]{5,10}-?$")


@dataclass(frozen=True, slots=True)
class ClusterCapabilities:
    """What the cluster's Kubernetes version allows."""

    #: Init containers with ``restartPolicy: Always`` (sidecar containers, on by default
    #: since Kubernetes 1.29): the sidecar starts before the app and stops after it.
    native_sidecars: bool = False

    @classmethod
    def for_version(cls, major: int, minor: int) -> ClusterCapabilities:
        return cls(native_sidecars=(major, minor) >= (1, 29))


@dataclass(frozen=True, slots=True)
class Injection:
    """The outcome for one pod: a patch and what it instrumented, or why nothing was done."""

    #: RFC 6902 operations against the pod as given; empty when nothing is injected.
    patch: list[dict[str, Any]]
    #: "injected", or a skip reason: a stable identifier for events and metric labels.
    reason: str
    message: str
    containers: tuple[str, ...] = ()
    #: Things deliberately left alone, e.g. a container whose PYTHONPATH comes from a Secret.
    notes: tuple[str, ...] = ()

    @property
    def injected(self) -> bool:
        return self.reason == "injected"


def _skip(reason: str, message: str, notes: Sequence[str] = ()) -> Injection:
    return Injection([], reason, message, (), tuple(notes))


def inject(
    pod: Mapping[str, Any], config: InjectionConfig, capabilities: ClusterCapabilities
) -> Injection:
    """The patch that instruments ``pod`` (the agent, the sidecar, env, volumes, status)."""
    spec = pod.get("spec")
    metadata = pod.get("metadata") or {}
    if not isinstance(spec, Mapping):
        return _skip("malformed-pod", "the pod has no spec")
    containers = spec.get("containers")
    if not isinstance(metadata, Mapping) or not isinstance(containers, list) or not containers:
        return _skip("malformed-pod", "the pod has no spec.containers list")
    for key in ("volumes", "initContainers"):
        if spec.get(key) is not None and not isinstance(spec[key], list):
            return _skip("malformed-pod", f"the pod's spec.{key} is not a list")
    annotations = metadata.get("annotations") or {}
    status = annotations.get(ANNOTATION_STATUS) if isinstance(annotations, Mapping) else None
    if status is not None:
        return _skip("already-injected", _already_injected_message(status))
    if spec.get("hostNetwork") is True:
        # Every pod of the node would bind the same metrics port.
        return _skip("host-network", "pods on the host network are not instrumented")
    conflict = _name_conflict(spec)
    if conflict:
        return _skip("name-conflict", f"the pod already has {conflict}")

    notes: list[str] = []
    targets = _target_names(containers, annotations, notes)
    by_name = {c.get("name"): i for i, c in enumerate(containers) if isinstance(c, Mapping)}
    chosen: list[int] = []
    for name in targets:
        container = containers[by_name[name]]
        why_not = _unfit(container)
        if why_not:
            notes.append(f"container {name!r} left alone: {why_not}")
        else:
            chosen.append(by_name[name])
    if not chosen:
        return _skip("no-target-container", "no container can be instrumented", notes)

    service = service_name_of(pod, config)
    patched = copy.deepcopy(dict(pod))
    new_spec = patched["spec"]
    for index in chosen:
        _instrument(new_spec["containers"][index], config, service)
    volumes = _list(new_spec, "volumes")
    volumes.append({"name": AGENT_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
    volumes.append({"name": SOCKET_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}})
    init_containers = _list(new_spec, "initContainers")
    # Appended: the user's init containers run first and exactly as before.
    init_containers.append(_installer(config))
    sidecar = _sidecar(config, service)
    if capabilities.native_sidecars:
        sidecar["restartPolicy"] = "Always"
        init_containers.append(sidecar)
    else:
        new_spec["containers"].append(sidecar)
    names = tuple(containers[i]["name"] for i in chosen)
    patched_meta = patched.get("metadata")
    if not isinstance(patched_meta, dict):
        patched_meta = patched["metadata"] = {}
    patched_annotations = patched_meta.get("annotations")
    if not isinstance(patched_annotations, dict):
        patched_annotations = patched_meta["annotations"] = {}
    patched_annotations[ANNOTATION_STATUS] = json.dumps(
        {
            "version": __version__,
            "configHash": config.digest,
            "containers": list(names),
            "sidecar": "native" if capabilities.native_sidecars else "container",
        },
        separators=(",", ":"),
    )
    operations = _operations(pod, patched, chosen)
    message = f"instrumented {', '.join(names)} (config {config.digest})"
    return Injection(operations, "injected", message, names, tuple(notes))


def _operations(
    pod: Mapping[str, Any], patched: Mapping[str, Any], chosen: Sequence[int]
) -> list[dict[str, Any]]:
    """RFC 6902 operations from ``pod`` to ``patched``, which differ only where ``inject``
    writes. Diffing the whole pod instead costs about ten times more for a new template."""
    spec, new_spec = pod["spec"], patched["spec"]
    operations: list[dict[str, Any]] = []
    for index in chosen:
        prefix = f"/spec/containers/{index}"
        # No move detection: inject never moves anything, and it is most of the cost.
        diff = jsonpatch.JsonPatch.from_diff(
            spec["containers"][index], new_spec["containers"][index], optimization=False
        )
        for operation in diff.patch:
            operation = {**operation, "path": prefix + operation["path"]}
            if "from" in operation:
                operation["from"] = prefix + operation["from"]
            operations.append(operation)
    for key in ("volumes", "initContainers", "containers"):
        before = spec.get(key)
        after = new_spec.get(key) or []
        if before is None and after:  # absent or null: the whole list
            operations.append({"op": "add", "path": f"/spec/{key}", "value": after})
        elif before is not None:
            for item in after[len(before) :]:
                operations.append({"op": "add", "path": f"/spec/{key}/-", "value": item})
    status = {ANNOTATION_STATUS: patched["metadata"]["annotations"][ANNOTATION_STATUS]}
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        operations.append({"op": "add", "path": "/metadata", "value": {"annotations": status}})
    elif not isinstance(metadata.get("annotations"), Mapping):
        operations.append({"op": "add", "path": "/metadata/annotations", "value": status})
    else:
        path = "/metadata/annotations/" + jsonpointer.escape(ANNOTATION_STATUS)
        operations.append({"op": "add", "path": path, "value": status[ANNOTATION_STATUS]})
    return operations


def _already_injected_message(status: object) -> str:
    try:
        version = json.loads(status).get("version") if isinstance(status, str) else None
    except (ValueError, AttributeError):
        version = None
    if version == __version__:
        return "the pod is already instrumented"
    return f"the pod was instrumented by Profilis {version or 'unknown'}; left as it is"


def _name_conflict(spec: Mapping[str, Any]) -> str | None:
    ours = {AGENT_VOLUME, SOCKET_VOLUME}
    for volume in spec.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("name") in ours:
            return f"a volume named {volume['name']}"
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            name = container.get("name") if isinstance(container, Mapping) else None
            if name in (INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME):
                return f"a container named {name}"
    return None


def _target_names(containers: list[Any], annotations: object, notes: list[str]) -> list[str]:
    names = [c.get("name") for c in containers if isinstance(c, Mapping)]
    present = [n for n in names if isinstance(n, str)]
    wanted = (
        annotations.get(ANNOTATION_CONTAINER_NAMES) if isinstance(annotations, Mapping) else None
    )
    if not isinstance(wanted, str) or not wanted.strip():
        first = names[0] if names else None
        return [first] if isinstance(first, str) else []
    listed = list(dict.fromkeys(n.strip() for n in wanted.split(",") if n.strip()))
    missing = [n for n in listed if n not in present]
    if missing:
        notes.append(
            f"{ANNOTATION_CONTAINER_NAMES} names unknown container(s): {', '.join(missing)}"
        )
    return [n for n in listed if n in present]


def _unfit(container: Mapping[str, Any]) -> str | None:
    """Why a target container cannot be instrumented, or None."""
    env = container.get("env")
    mounts = container.get("volumeMounts")
    env = [] if env is None else env
    mounts = [] if mounts is None else mounts
    for key, items in (("env", env), ("volumeMounts", mounts)):
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            return f"its {key} is not a list of objects"
    for item in env:
        if isinstance(item, Mapping) and item.get("name") == "PYTHONPATH" and "valueFrom" in item:
            # Its value is unknown here; replacing it could break the app's imports.
            return "PYTHONPATH comes from valueFrom"
    paths = {m.get("mountPath") for m in mounts}
    for path in (AGENT_MOUNT_PATH, SOCKET_DIR):
        if path in paths:
            return f"something is already mounted at {path}"
    return None


def service_name_of(pod: Mapping[str, Any], config: InjectionConfig) -> str:
    """The `service` label: the config's, else the pod's app labels, else its owner's name."""
    if config.service_name:
        return config.service_name
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    for key in ("app.kubernetes.io/name", "app"):
        value = labels.get(key) if isinstance(labels, Mapping) else None
        if isinstance(value, str) and 0 < len(value) <= 255:
            return value
    for key in ("generateName", "name"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip("-"):
            # A ReplicaSet's pods are "<deployment>-<template hash>-<random>".
            return _TEMPLATE_HASH_SUFFIX.sub("", value).rstrip("-")[:255] or value[:255]
    return "unknown_service"


def agent_env(config: InjectionConfig, service: str) -> list[tuple[str, str]]:
    """The ``PROFILIS_*`` variables an instrumented container gets (read by profilis.config)."""
    env = [
        ("PROFILIS_SERVICE_NAME", service),
        ("PROFILIS_SAMPLE_RATE", repr(config.sample_rate)),
        ("PROFILIS_QUEUE_SIZE", str(config.queue_size)),
        ("PROFILIS_BATCH_MAX", str(config.batch_max)),
        ("PROFILIS_FLUSH_INTERVAL", repr(config.flush_interval_s)),
        ("PROFILIS_DROP_OLDEST", _bool(config.drop_oldest)),
        # Inside a pod the agent always sends to the sidecar; the sidecar forwards the rest.
        ("PROFILIS_EXPORTERS", "collector"),
        ("PROFILIS_COLLECTOR_ADDRESS", DEFAULT_COLLECTOR_ADDRESS),
        ("PROFILIS_REDACT", _bool(config.redact)),
        ("PROFILIS_DEBUG", _bool(config.debug)),
    ]
    if config.exclude_routes:
        env.append(("PROFILIS_EXCLUDE_ROUTES", ",".join(config.exclude_routes)))
    if config.disabled_instrumentations:
        env.append(
            ("PROFILIS_DISABLED_INSTRUMENTATIONS", ",".join(config.disabled_instrumentations))
        )
    return env


def _list(parent: dict[str, Any], key: str) -> list[Any]:
    """``parent[key]``, a list, made empty when absent or null (a null is valid JSON there)."""
    if parent.get(key) is None:
        parent[key] = []
    items: list[Any] = parent[key]
    return items


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _instrument(container: dict[str, Any], config: InjectionConfig, service: str) -> None:
    env: list[dict[str, Any]] = _list(container, "env")
    defined = {item.get("name") for item in env if isinstance(item, Mapping)}
    python_path = next((item for item in env if item.get("name") == "PYTHONPATH"), None)
    if python_path is None:
        # An envFrom source may define PYTHONPATH; "$(PYTHONPATH)" keeps its value (the
        # kubelet expands references to envFrom variables too).
        tail = ":$(PYTHONPATH)" if container.get("envFrom") else ""
        env.append({"name": "PYTHONPATH", "value": AGENT_MOUNT_PATH + tail})
    else:
        existing = python_path.get("value") or ""
        python_path["value"] = f"{AGENT_MOUNT_PATH}:{existing}" if existing else AGENT_MOUNT_PATH
    # Variables the container sets itself win: a per-container override is a feature.
    for name, value in agent_env(config, service):
        if name not in defined:
            env.append({"name": name, "value": value})
    env.extend(_downward_api(defined))
    mounts = _list(container, "volumeMounts")
    mounts.append({"name": AGENT_VOLUME, "mountPath": AGENT_MOUNT_PATH, "readOnly": True})
    mounts.append({"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR})


def _downward_api(defined: set[object]) -> list[dict[str, Any]]:
    return [
        {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for name, path in _DOWNWARD_API
        if name not in defined
    ]


def _installer(config: InjectionConfig) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["profilis-agent", "install", AGENT_MOUNT_PATH],
        "resources": _plain_resources(config.agent_resources),
        "securityContext": copy.deepcopy(_SECURITY_CONTEXT),
        "volumeMounts": [{"name": AGENT_VOLUME, "mountPath": AGENT_MOUNT_PATH}],
    }


def _sidecar(config: InjectionConfig, service: str) -> dict[str, Any]:
    command = [
        "profilis-sidecar",
        *("--listen", DEFAULT_COLLECTOR_ADDRESS),
        *("--metrics-port", str(config.metrics_port)),
        # Explicit, though the default: Prometheus scrapes the pod IP.
        *("--metrics-host", "0.0.0.0"),
        *("--service", service),
    ]
    if "otlp" in config.exporters and config.otlp_endpoint:
        command += ["--forward", f"otlp:{config.otlp_endpoint}"]
    if "console" in config.exporters:
        command += ["--forward", "console:json"]
    probe_target = {"path": "/readyz", "port": METRICS_PORT_NAME}
    return {
        "name": SIDECAR_CONTAINER_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": _downward_api(set()),
        "ports": [
            {"name": METRICS_PORT_NAME, "containerPort": config.metrics_port, "protocol": "TCP"}
        ],
        # The app starts once this passes (native sidecars), so its first batches find the
        # socket; 30 x 1 s covers a slow image start.
        "startupProbe": {"httpGet": probe_target, "periodSeconds": 1, "failureThreshold": 30},
        # No readiness probe on purpose: telemetry must never take the app out of service.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": _plain_resources(config.sidecar_resources),
        "securityContext": copy.deepcopy(_SECURITY_CONTEXT),
        "volumeMounts": [{"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR}],
    }


def _plain_resources(resources: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(amounts) for kind, amounts in resources.items()}
