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
from profilis.k8s import (
    AGENT_MOUNT_PATH,
    AGENT_VOLUME,
    ANNOTATION_CONTAINER_NAMES,
    ANNOTATION_STATUS,
    INIT_CONTAINER_NAME,
    SIDECAR_CONTAINER_NAME,
    SOCKET_DIR,
    SOCKET_VOLUME,
)
from profilis_operator import additions
from profilis_operator.additions import agent_env, list_at
from profilis_operator.constraints import NamespaceConstraints, refusal
from profilis_operator.effective_config import InjectionConfig

__all__ = [
    "SKIP_REASONS",
    "ClusterCapabilities",
    "Injection",
    "agent_env",
    "annotation_operation",
    "inject",
    "service_name_of",
]

#: Why ``inject`` leaves an opted-in pod alone (each has a runbook entry).
SKIP_REASONS: Final = (
    "malformed-pod",
    "already-injected",
    "host-network",
    "windows-pod",
    "pod-level-resources",
    "name-conflict",
    "no-target-container",
    "metrics-port-taken",
    "limit-range",
    "resource-quota",
)
#: How far above the configured metrics port the sidecar may move to dodge the pod's ports.
_PORT_SEARCH: Final = 100
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
    pod: Mapping[str, Any],
    config: InjectionConfig,
    capabilities: ClusterCapabilities,
    constraints: NamespaceConstraints | None = None,
) -> Injection:
    """The patch that instruments ``pod`` (the agent, the sidecar, env, volumes, status).

    ``constraints`` are the LimitRanges and ResourceQuotas of the pod's namespace: containers
    that would make the API server refuse the pod are not added.
    """
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
    if _is_windows(spec):
        # The agent and the sidecar are Linux images, and their securityContext fields are
        # refused for Windows pods.
        return _skip("windows-pod", "Windows pods are not instrumented (Linux-only images)")
    if spec.get("resources"):
        # The API server wants the pod's own requests and limits to cover its containers';
        # resizing the user's pod budget is not the webhook's call.
        message = "the pod sets pod-level resources (spec.resources) for its own containers"
        return _skip("pod-level-resources", message)
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

    metrics_port = _free_metrics_port(spec, config.metrics_port)
    if metrics_port is None:
        top = config.metrics_port + _PORT_SEARCH
        message = f"the pod declares every port from {config.metrics_port} to {top}"
        return _skip("metrics-port-taken", message, notes)
    service = service_name_of(pod, config)
    installer = additions.installer(config)
    sidecar = additions.sidecar(config, service, metrics_port)
    if constraints is not None:
        refused = refusal(pod, [installer, sidecar], capabilities.native_sidecars, constraints)
        if refused is not None:
            return _skip(*refused, notes)
    patched = copy.deepcopy(dict(pod))
    new_spec = patched["spec"]
    for index in chosen:
        additions.instrument(new_spec["containers"][index], config, service)
    list_at(new_spec, "volumes").extend(copy.deepcopy(list(additions.VOLUMES)))
    init_containers = list_at(new_spec, "initContainers")
    # Appended: the user's init containers run first and exactly as before.
    init_containers.append(installer)
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
            "metricsPort": metrics_port,
        },
        separators=(",", ":"),
    )
    operations = _operations(pod, patched, chosen)
    message = f"instrumented {', '.join(names)} (config {config.digest})"
    if metrics_port != config.metrics_port:
        notes.append(f"the pod declares port {config.metrics_port}: metrics on {metrics_port}")
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
    status = patched["metadata"]["annotations"][ANNOTATION_STATUS]
    operations.append(annotation_operation(pod, ANNOTATION_STATUS, status))
    return operations


def annotation_operation(pod: Mapping[str, Any], key: str, value: str) -> dict[str, Any]:
    """The RFC 6902 operation that sets annotation ``key`` on ``pod``, whatever it has."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        return {"op": "add", "path": "/metadata", "value": {"annotations": {key: value}}}
    if not isinstance(metadata.get("annotations"), Mapping):
        return {"op": "add", "path": "/metadata/annotations", "value": {key: value}}
    return {"op": "add", "path": "/metadata/annotations/" + jsonpointer.escape(key), "value": value}


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
    names = {item.get("name") for item in env}
    if additions.APP_PYTHONPATH_VAR in names:
        return f"it already defines {additions.APP_PYTHONPATH_VAR}"
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


def _is_windows(spec: Mapping[str, Any]) -> bool:
    os_spec = spec.get("os")
    node_selector = spec.get("nodeSelector")
    return (isinstance(os_spec, Mapping) and os_spec.get("name") == "windows") or (
        isinstance(node_selector, Mapping) and node_selector.get("kubernetes.io/os") == "windows"
    )


def _free_metrics_port(spec: Mapping[str, Any], wanted: int) -> int | None:
    """``wanted``, or the first port above it that no container of the pod declares (they
    share one network namespace with the sidecar); None if none within ``_PORT_SEARCH``."""
    taken: set[object] = set()
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            ports = container.get("ports") if isinstance(container, Mapping) else None
            for port in ports if isinstance(ports, list) else ():
                if isinstance(port, Mapping):
                    taken.add(port.get("containerPort"))
    for candidate in range(wanted, min(wanted + _PORT_SEARCH, 65535) + 1):
        if candidate not in taken:
            return candidate
    return None
