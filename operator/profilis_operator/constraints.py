"""Whether LimitRanger or ResourceQuota would refuse a pod because of the containers that
``profilis_operator.injection`` adds: ``refusal`` answers beforehand, from the namespace's
LimitRange and ResourceQuota objects, so ``profilis_operator.admission`` can skip the pod.
The pod's resource arithmetic is in ``profilis_operator.pod_resources``."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from profilis_operator.pod_resources import (
    POD_LEVEL,
    Amounts,
    Container,
    Pod,
    amounts_of,
    as_list,
    as_map,
    as_maps,
    best_effort,
    container_of,
    milli,
    pod_totals,
    pod_usage,
    show,
    show_all,
    usage_of,
)

# Both admission plugins validate *after* the mutating webhooks, so our init container and
# sidecar can get the whole pod refused. The rules are plain dicts, as the operator's indices
# hold them. This follows Kubernetes v1.34: plugin/pkg/admission/limitranger and
# pkg/quota/v1/evaluator/core/pods.go. Pure; a rule it cannot read is ignored, never raised,
# since the webhook fails open.

__all__ = [
    "LimitRangeItem",
    "LimitRangeRules",
    "NamespaceConstraints",
    "QuotaRules",
    "ScopeRequirement",
    "limit_range_rules",
    "quota_rules",
    "refusal",
]

#: What a quota can require every container to specify (the evaluator's validationSet).
_MUST_SPECIFY: Final = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
#: The ProfilisConfig settings of the init container and of the sidecar, in that order.
_SETTINGS: Final = ("agent.resources", "sidecar.resources")


@dataclass(frozen=True, slots=True)
class LimitRangeItem:
    """One entry of a LimitRange's spec.limits, for pods ("Container" or "Pod")."""

    type: str
    min: Amounts
    max: Amounts
    max_limit_request_ratio: Amounts
    #: What LimitRanger fills into a container's limits and requests that lack them.
    default: Amounts
    default_request: Amounts


@dataclass(frozen=True, slots=True)
class LimitRangeRules:
    name: str
    items: tuple[LimitRangeItem, ...] = ()


@dataclass(frozen=True, slots=True)
class ScopeRequirement:
    """A quota scope: spec.scopes entries are (scope, "Exists"), then spec.scopeSelector's."""

    scope: str
    operator: str = "Exists"
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuotaRules:
    name: str
    hard: Amounts
    #: status.used; a quota the controller has not counted yet counts as 0 used.
    used: Amounts
    scopes: tuple[ScopeRequirement, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceConstraints:
    limit_ranges: tuple[LimitRangeRules, ...] = ()
    quotas: tuple[QuotaRules, ...] = ()

    @classmethod
    def of(
        cls, limit_ranges: Iterable[Mapping[str, Any]], quotas: Iterable[Mapping[str, Any]]
    ) -> NamespaceConstraints:
        return cls(
            tuple(limit_range_rules(body) for body in limit_ranges),
            tuple(quota_rules(body) for body in quotas),
        )


def limit_range_rules(body: Mapping[str, Any]) -> LimitRangeRules:
    """The pod rules of a LimitRange object, with the API server's defaulting of its items."""
    items = []
    for raw in as_maps(as_map(as_map(body).get("spec")).get("limits")):
        kind = raw.get("type")
        if kind not in ("Container", "Pod"):
            continue
        maximum, minimum = amounts_of(raw.get("max")), amounts_of(raw.get("min"))
        default, default_request = (
            amounts_of(raw.get("default")),
            amounts_of(raw.get("defaultRequest")),
        )
        if kind == "Container":  # SetDefaults_LimitRangeItem: a no-op on stored objects
            default = {**maximum, **default}
            default_request = {**minimum, **default, **default_request}
        ratio = amounts_of(raw.get("maxLimitRequestRatio"))
        items.append(LimitRangeItem(kind, minimum, maximum, ratio, default, default_request))
    return LimitRangeRules(_name(body), tuple(items))


def quota_rules(body: Mapping[str, Any]) -> QuotaRules:
    """The rules of a ResourceQuota object (spec.hard, not status.hard, which lags behind)."""
    spec, status = as_map(as_map(body).get("spec")), as_map(as_map(body).get("status"))
    # An unknown scope matches no pod, as in the API server: so does an unreadable one here.
    scopes = [ScopeRequirement(str(scope)) for scope in as_list(spec.get("scopes"))]
    for raw in as_maps(as_map(spec.get("scopeSelector")).get("matchExpressions")):
        scope, op, values = raw.get("scopeName"), raw.get("operator"), as_list(raw.get("values"))
        scopes.append(ScopeRequirement(str(scope), str(op), tuple(str(v) for v in values)))
    hard, used = amounts_of(spec.get("hard")), amounts_of(status.get("used"))
    return QuotaRules(_name(body), hard, used, tuple(scopes))


def refusal(
    pod: Mapping[str, Any],
    added: Sequence[Mapping[str, Any]],
    sidecar_native: bool,
    constraints: NamespaceConstraints,
) -> tuple[str, str] | None:
    """(reason, message) if the API server would refuse ``pod`` once the ``added`` containers
    are in it (``added[0]`` the init container, ``added[1]`` the sidecar: a native sidecar
    or an ordinary container) while it accepts ``pod`` as it is, as far as these rules go;
    None if they fit. reason is "limit-range" or "resource-quota"."""
    spec = as_map(as_map(pod).get("spec"))
    before = Pod(
        tuple(container_of(c) for c in as_maps(spec.get("containers"))),
        tuple(container_of(c) for c in as_maps(spec.get("initContainers"))),
        spec,
    )
    ours = [_ours(c, constraints.limit_ranges) for c in added if isinstance(c, Mapping)]
    init = ours[:1]
    sidecars = [Container(c.name, c.requests, c.limits, sidecar_native) for c in ours[1:]]
    after = Pod(
        before.containers + (() if sidecar_native else tuple(sidecars)),
        before.init_containers + tuple(init) + (tuple(sidecars) if sidecar_native else ()),
        spec,
    )
    if _first_problem(before, constraints) is not None:
        return None  # refused anyway, and not because of us
    as_added = [container_of(c) for c in added if isinstance(c, Mapping)]
    problem = _defaults_problem(as_added, ours) or _first_problem(after, constraints)
    if problem is None:
        return None
    setting = {c.name: s for c, s in zip(ours, _SETTINGS, strict=False)}
    named = [s for name, s in setting.items() if name in problem.containers]
    fix = f"change {' and '.join(named or setting.values())} in the ProfilisConfig"
    if problem.exceeded:  # by our containers alone, as the pod fits without them
        before_usage, after_usage = pod_usage(before), pod_usage(after)
        ours_use = {k: after_usage[k] - before_usage.get(k, Decimal(0)) for k in problem.exceeded}
        names = ", ".join(setting)
        fix = f"{names} add {show_all(ours_use)}: {fix} or raise the quota"
    return problem.reason, f"{problem.text}; {fix}"


def _ours(raw: Mapping[str, Any], limit_ranges: Sequence[LimitRangeRules]) -> Container:
    """Our container as the validators see it: our patch changes the pod, so the API server
    defaults requests from limits, then re-runs LimitRanger, which fills in its defaults."""
    container = container_of(raw)
    requests, limits = {**container.limits, **container.requests}, dict(container.limits)
    for rules in limit_ranges:
        default: dict[str, Decimal] = {}
        default_request: dict[str, Decimal] = {}
        for item in rules.items:
            if item.type == "Container":
                default.update(item.default)
                default_request.update(item.default_request)
        limits, requests = {**default, **limits}, {**default_request, **requests}
    return Container(container.name, requests, limits)


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: str
    text: str
    #: The containers the message is about; none: the pod as a whole.
    containers: tuple[str, ...] = ()
    #: The quota resources that would go over the hard limit.
    exceeded: tuple[str, ...] = ()


def _defaults_problem(as_added: Sequence[Container], ours: Sequence[Container]) -> _Problem | None:
    """A LimitRange default limit below our own request: the pod would be invalid (422)."""
    for added, c in zip(as_added, ours, strict=True):
        for name, request in sorted(c.requests.items()):
            if name not in added.limits and (limit := c.limits.get(name, request)) < request:
                text = f"a LimitRange gives container {c.name} a default {name} limit of "
                text += f"{show(name, limit)}, below its request of {show(name, request)}"
                return _Problem("limit-range", text, (c.name,))
    return None


def _first_problem(pod: Pod, constraints: NamespaceConstraints) -> _Problem | None:
    """The first refusal in the API server's order: LimitRanger, then every quota's
    "must specify", then every quota's "exceeded"."""
    everyone = pod.containers + pod.init_containers
    for rules in constraints.limit_ranges:
        for item in rules.items:
            if item.type == "Pod":
                requests, limits = pod_totals(pod, "requests"), pod_totals(pod, "limits")
                if found := _limit_problem(item, requests, limits):
                    return _Problem("limit-range", f"LimitRange {rules.name}: {found}")
                continue
            for container in everyone:
                if found := _limit_problem(item, container.requests, container.limits):
                    text = f"LimitRange {rules.name}: {found} (container {container.name})"
                    return _Problem("limit-range", text, (container.name,))
    quotas = [q for q in constraints.quotas if all(_in_scope(s, pod) for s in q.scopes)]
    pod_level = as_map(pod.spec.get("resources"))
    if not any(k in POD_LEVEL for f in ("requests", "limits") for k in as_map(pod_level.get(f))):
        for quota in quotas:
            if unspecified := _unspecified(quota, everyone):
                return unspecified
    usage = pod_usage(pod)
    for quota in quotas:
        used = {k: quota.used.get(k, Decimal(0)) for k in quota.hard}
        over = tuple(
            sorted(
                k for k, v in usage.items() if k in quota.hard and v and used[k] + v > quota.hard[k]
            )
        )
        if over:
            text = (
                f"ResourceQuota {quota.name}: exceeded quota, requested: {show_all(usage, over)}"
                f", used: {show_all(used, over)}, limited: {show_all(quota.hard, over)}"
            )
            return _Problem("resource-quota", text, exceeded=over)
    return None


def _unspecified(quota: QuotaRules, containers: Iterable[Container]) -> _Problem | None:
    """The quota's "must specify": every container sets what the quota tracks of these."""
    required = _MUST_SPECIFY & set(quota.hard)
    missing: dict[str, list[str]] = {}
    for container in containers:
        has = usage_of(container.requests, container.limits)
        for name in sorted(required - set(has)):
            missing.setdefault(name, []).append(container.name)
    if not missing:
        return None
    said = "; ".join(f"{k} for: {','.join(sorted(v))}" for k, v in sorted(missing.items()))
    names = tuple(dict.fromkeys(n for v in missing.values() for n in v))
    return _Problem("resource-quota", f"ResourceQuota {quota.name}: must specify {said}", names)


def _limit_problem(item: LimitRangeItem, requests: Amounts, limits: Amounts) -> str | None:
    """The first of LimitRanger's min, max and maxLimitRequestRatio checks that fails."""
    for word, bounds, needed, beyond in (
        ("minimum", item.min, "request", operator.lt),
        ("maximum", item.max, "limit", operator.gt),
    ):
        for name, bound in sorted(bounds.items()):
            head = f"{word} {name} usage per {item.type} is {show(name, bound)}"
            amounts = {"request": requests.get(name), "limit": limits.get(name)}
            if amounts[needed] is None:
                return f"{head}.  No {needed} is specified"
            for what in (needed, "limit" if needed == "request" else "request"):
                value = amounts[what]
                if value is not None and beyond(milli(value), milli(bound)):
                    return f"{head}, but {what} is {show(name, value)}"
    for name, bound in sorted(item.max_limit_request_ratio.items()):
        head = f"{name} max limit to request ratio per {item.type} is {bound.normalize():f}"
        request_m = milli(requests.get(name, Decimal(0)))
        limit_m = milli(limits.get(name, Decimal(0)))
        if request_m == 0:
            return f"{head}, but no request is specified or request is 0"
        if limit_m == 0:
            return f"{head}, but no limit is specified or limit is 0"
        if Decimal(limit_m) / request_m > bound:
            return f"{head}, but provided ratio is {limit_m / request_m:f}"
    return None


def _in_scope(requirement: ScopeRequirement, pod: Pod) -> bool:
    scope, spec = requirement.scope, pod.spec
    if scope in ("Terminating", "NotTerminating"):
        deadline = spec.get("activeDeadlineSeconds")
        terminating = isinstance(deadline, int) and deadline >= 0
        return terminating == (scope == "Terminating")
    if scope in ("BestEffort", "NotBestEffort"):
        return best_effort(pod) == (scope == "BestEffort")
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        if requirement.operator in ("Exists", "DoesNotExist"):
            return bool(name) == (requirement.operator == "Exists")
        if requirement.operator in ("In", "NotIn") and requirement.values:
            return (bool(name) and name in requirement.values) == (requirement.operator == "In")
        return False  # a selector the API server cannot parse: it refuses every pod anyway
    if scope == "CrossNamespacePodAffinity":
        affinity = as_map(spec.get("affinity"))
        for kind in ("podAffinity", "podAntiAffinity"):
            terms = as_map(affinity.get(kind))
            required = as_maps(terms.get("requiredDuringSchedulingIgnoredDuringExecution"))
            preferred = as_maps(terms.get("preferredDuringSchedulingIgnoredDuringExecution"))
            for term in [*required, *(as_map(t.get("podAffinityTerm")) for t in preferred)]:
                if term.get("namespaces") or term.get("namespaceSelector") is not None:
                    return True
    return False  # another scope (VolumeAttributesClass) never matches a pod


def _name(body: Mapping[str, Any]) -> str:
    name = as_map(as_map(body).get("metadata")).get("name")
    return name if isinstance(name, str) else "?"
