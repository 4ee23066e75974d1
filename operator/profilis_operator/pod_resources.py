"""A pod's resources as Kubernetes v1.34 adds them up, for ``profilis_operator.constraints``:
PodRequests/PodLimits with init containers and native sidecars, the quota usage, the
BestEffort class, and reading and printing quantities. Pure; unreadable values are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from kubernetes.utils import parse_quantity

__all__ = [
    "POD_LEVEL",
    "Amounts",
    "Container",
    "Pod",
    "amounts_of",
    "as_list",
    "as_map",
    "as_maps",
    "best_effort",
    "container_of",
    "milli",
    "pod_totals",
    "pod_usage",
    "show",
    "show_all",
    "usage_of",
]

Amounts = Mapping[str, Decimal]

#: The resources that may be set at pod level (spec.resources) and then replace the sum.
POD_LEVEL: Final = ("cpu", "memory")


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    requests: Amounts
    limits: Amounts
    #: An init container with restartPolicy Always (a native sidecar).
    restartable: bool = False


@dataclass(frozen=True, slots=True)
class Pod:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...]
    spec: Mapping[str, Any]


def container_of(raw: Mapping[str, Any]) -> Container:
    resources, name = as_map(raw.get("resources")), raw.get("name")
    requests, limits = amounts_of(resources.get("requests")), amounts_of(resources.get("limits"))
    restartable = raw.get("restartPolicy") == "Always"
    return Container(name if isinstance(name, str) else "", requests, limits, restartable)


def pod_totals(pod: Pod, field: str, overhead: bool = False) -> dict[str, Decimal]:
    """PodRequests/PodLimits: the app containers and native sidecars run together; each init
    container runs alone with the sidecars started before it; the pod needs the larger."""
    total: dict[str, Decimal] = {}
    for container in pod.containers:
        _add(total, getattr(container, field))
    started: dict[str, Decimal] = {}
    peak: dict[str, Decimal] = {}
    for container in pod.init_containers:
        own = getattr(container, field)
        if container.restartable:
            _add(total, own)
            _add(started, own)
        running = dict(started) if container.restartable else _add(dict(own), started)
        for key, value in running.items():
            peak[key] = max(peak.get(key, value), value)
    for key, value in peak.items():
        total[key] = max(total.get(key, value), value)
    pod_level = amounts_of(as_map(pod.spec.get("resources")).get(field))
    total.update({k: v for k, v in pod_level.items() if k in POD_LEVEL})
    if overhead:
        for key, value in amounts_of(pod.spec.get("overhead")).items():
            if field == "requests" or total.get(key):
                total[key] = total.get(key, Decimal(0)) + value
    return total


def usage_of(requests: Amounts, limits: Amounts) -> dict[str, Decimal]:
    """The quota resources these requests and limits use (podComputeUsageHelper)."""
    usage: dict[str, Decimal] = {}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    # Hugepages and extended resources are left out: we add none, so they cannot be ours.
    return usage


def pod_usage(pod: Pod) -> dict[str, Decimal]:
    return usage_of(pod_totals(pod, "requests", True), pod_totals(pod, "limits", True))


def best_effort(pod: Pod) -> bool:
    """No positive cpu or memory anywhere (the pod's own resources replace the containers')."""
    pod_level = pod.spec.get("resources")
    lists: list[Amounts]
    if isinstance(pod_level, Mapping):
        lists = [amounts_of(pod_level.get("requests")), amounts_of(pod_level.get("limits"))]
    else:
        everyone = pod.containers + pod.init_containers
        lists = [r for c in everyone for r in (c.requests, c.limits)]
    return not any(v > 0 for amounts in lists for k, v in amounts.items() if k in POD_LEVEL)


def amounts_of(raw: object) -> dict[str, Decimal]:
    """The readable, finite quantities of a resource list; the rest are left out."""
    amounts = {}
    for name, text in as_map(raw).items():
        try:
            value = parse_quantity(text)  # type: ignore[no-untyped-call]  # untyped in kubernetes 37
        except (ValueError, TypeError, ArithmeticError):
            continue
        # Finite and below 10^40: the API server's own quantities are far smaller, and a
        # huge exponent would make the integer arithmetic below take forever.
        if isinstance(name, str) and value.is_finite() and value.adjusted() < 40:
            amounts[name] = value
    return amounts


def _add(total: dict[str, Decimal], more: Amounts) -> dict[str, Decimal]:
    for key, value in more.items():
        total[key] = total.get(key, Decimal(0)) + value
    return total


def milli(value: Decimal) -> int:
    """As LimitRanger compares: in thousandths, rounded up."""
    return math.ceil(value * 1000)


def show(name: str, value: Decimal) -> str:
    """A quantity as Kubernetes would print it (near enough): 250m, 2, 64Mi, 1500000."""
    if name.endswith("cpu") and value != value.to_integral_value():
        return f"{milli(value)}m"
    if value == value.to_integral_value() and not name.endswith("cpu"):
        for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if value and value % size == 0:
                return f"{int(value // size)}{unit}"
    return f"{value.normalize():f}"


def show_all(amounts: Mapping[str, Decimal], names: Iterable[str] | None = None) -> str:
    """ "limits.cpu=600m,limits.memory=1Gi", as the API server prints a resource list."""
    keys = sorted(amounts) if names is None else names
    return ",".join(f"{k}={show(k, amounts.get(k, Decimal(0)))}" for k in keys)


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_maps(value: object) -> list[Mapping[str, Any]]:
    return [item for item in as_list(value) if isinstance(item, Mapping)]
