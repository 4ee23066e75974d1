"""Reading rendered manifests: objects by kind, the pod specs inside workloads, containers.

Plain functions over the dicts ``tests.chart.helm.Helm.template`` returns, shared by the
chart's test modules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tests.chart.helm import Manifest

#: Kinds whose pod template sits at spec.template.spec.
_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: Sequence[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs(manifests: Sequence[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every Pod and pod template the chart renders."""
    for manifest in manifests:
        kind, name = manifest.get("kind"), manifest["metadata"]["name"]
        if kind == "Pod":
            yield f"{kind}/{name}", manifest["spec"]
        elif kind in _WORKLOADS:
            yield f"{kind}/{name}", manifest["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield f"{kind}/{name}", manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and ordinary containers alike: every one of them runs code."""
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def env_value(container: dict[str, Any], name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            value = item.get("value")
            return value if isinstance(value, str) else None
    return None
