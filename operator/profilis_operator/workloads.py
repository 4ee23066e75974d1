"""Workloads: a Deployment, StatefulSet or DaemonSet annotated ``profilis.io/inject`` gets it on
its pod template, with the config hash, so that its pods are (or stop being) instrumented.

``template_changes`` is the pure rule; ``register`` wires it to kopf: a level-based
``on.event`` handler per workload (create, update and operator restart alike: kopf lists
every object when it starts), and a ProfilisConfig handler that re-annotates the workloads
that use a config when it changes (so the pods roll). ``keep_config_statuses`` writes each
ProfilisConfig's status from the indices. Nothing is stored on the workloads but the
template annotations themselves, and nothing on the ProfilisConfigs but their status: no
finalizer (a kopf timer would add one), so deleting a ProfilisConfig or its namespace never
waits for the operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import kopf

from profilis.k8s import (
    ANNOTATION_CONFIG,
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_CONTAINER_NAMES,
    ANNOTATION_INJECT,
    API_GROUP,
    API_VERSION,
    CONFIG_PLURAL,
    INJECT_FALSE,
    INJECT_TRUE,
)
from profilis_operator.admission import ConfigEntry, EventSpec, choose_config
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.kubeapi import ApiError

if TYPE_CHECKING:
    from profilis_operator.handlers import OperatorRuntime

__all__ = [
    "WORKLOAD_KINDS",
    "WorkloadRef",
    "config_status",
    "keep_config_statuses",
    "register",
    "template_changes",
    "template_hash",
]

log = logging.getLogger("profilis.operator.workloads")

#: plural -> kind, in the apps/v1 group: the workloads with a pod template we annotate.
WORKLOAD_KINDS: Final = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
}
#: Workload annotations copied to the template while the workload opts in.
_MIRRORED: Final = (ANNOTATION_CONFIG, ANNOTATION_CONTAINER_NAMES)


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """An annotated (or formerly annotated) workload, as the config handlers need it."""

    plural: str
    name: str
    uid: str
    annotations: Mapping[str, str]
    template_annotations: Mapping[str, str]


def template_hash(
    entries: Iterable[ConfigEntry], config_name: str | None, defaults: InjectionConfig
) -> str:
    """The config-hash annotation: the effective config's digest, or why there is none."""
    config, reason, _ = choose_config(entries, config_name, defaults)
    return config.digest if config is not None else str(reason)


def template_changes(
    annotations: Mapping[str, str], template: Mapping[str, str], config_hash: str
) -> dict[str, str | None]:
    """Merge-patch entries (None deletes) for the template annotations; {} when in sync.

    ``"true"`` on the workload: the template opts in, with the hash and the workload's
    ``profilis.io/config``/``container-names``. ``"false"``: the template opts out, which
    also wins over a namespace label. Neither: what this operator put there is removed; a
    template the user annotated by hand (no config hash) is left alone.
    """
    wanted = annotations.get(ANNOTATION_INJECT)
    managed = ANNOTATION_CONFIG_HASH in template
    desired: dict[str, str | None] = {}
    if wanted == INJECT_TRUE:
        desired = {ANNOTATION_INJECT: INJECT_TRUE, ANNOTATION_CONFIG_HASH: config_hash}
    elif wanted == INJECT_FALSE:
        desired = {ANNOTATION_INJECT: INJECT_FALSE, ANNOTATION_CONFIG_HASH: None}
    elif managed:
        desired = {ANNOTATION_INJECT: None, ANNOTATION_CONFIG_HASH: None}
    if wanted == INJECT_TRUE or managed:
        for key in _MIRRORED:
            desired[key] = annotations.get(key) if wanted == INJECT_TRUE else None
    return {key: value for key, value in desired.items() if template.get(key) != value}


def _template_annotations(body: Mapping[str, Any]) -> dict[str, str]:
    template = (body.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def _is_workload(resource: kopf.Resource) -> bool:
    return resource.group == "apps" and resource.plural in WORKLOAD_KINDS


class _AppliedTemplates:
    """The template changes this operator made, by workload uid, to tell a stale event from
    a real one. A watch can deliver events older than our own patch (the controller-manager
    updated the status in between): their body still lacks the change, and patching again
    would be the same write twice. A template change raises ``metadata.generation``; an
    event at a generation below the one our patch's answer carried predates it."""

    def __init__(self) -> None:
        self._by_uid: dict[str, tuple[int, dict[str, str | None]]] = {}
        #: Workloads of excluded namespaces already reported as left alone (logged once).
        self._excluded: set[str] = set()

    def note_excluded(self, uid: str) -> bool:
        """True the first time ``uid`` is seen in an excluded namespace."""
        first = uid not in self._excluded
        self._excluded.add(uid)
        return first

    def already_applied(
        self, uid: str, generation: int | None, changes: Mapping[str, str | None]
    ) -> bool:
        applied = self._by_uid.get(uid)
        return (
            applied is not None
            and generation is not None
            and generation < applied[0]
            and dict(changes) == applied[1]
        )

    def record(
        self, uid: str, generation_after: int | None, changes: Mapping[str, str | None]
    ) -> None:
        if uid and generation_after is not None:
            self._by_uid[uid] = (generation_after, dict(changes))

    def forget(self, uid: str) -> None:
        self._by_uid.pop(uid, None)
        self._excluded.discard(uid)


def register(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    """Add the workload and ProfilisConfig handlers to ``registry``."""
    applied = _AppliedTemplates()

    @kopf.index(_is_workload, id="profilis_workloads", registry=registry)
    def profilis_workloads(
        body: kopf.Body, namespace: str | None, name: str, resource: kopf.Resource, **_: Any
    ) -> dict[str, WorkloadRef] | None:
        if namespace is None:
            return None
        annotations = dict(body.metadata.annotations)
        template = _template_annotations(body)
        if ANNOTATION_INJECT not in annotations and ANNOTATION_CONFIG_HASH not in template:
            return None  # never ours: not indexed
        uid = str(body.metadata.uid or "")
        return {namespace: WorkloadRef(resource.plural, name, uid, annotations, template)}

    async def apply(
        plural: str, namespace: str, name: str, uid: str, changes: Mapping[str, str | None]
    ) -> None:
        """Patch the template (one code path for both handlers) and remember the generation
        the API server answered with; a failed patch is not remembered, so the workload's
        next event tries again."""
        try:
            generation = await runtime.api.patch_template_annotations(
                plural, namespace, name, changes
            )
        except ApiError as exc:
            runtime.metrics.errors.labels("workloads").inc()
            log.warning("cannot update %s %s/%s: %s", plural, namespace, name, exc)
            return
        applied.record(uid, generation, changes)
        _report(runtime, plural, namespace, name, changes)

    @kopf.on.event(_is_workload, id="reconcile_workload", registry=registry)
    async def reconcile_workload(
        body: kopf.Body,
        type: str,
        namespace: str | None,
        name: str,
        resource: kopf.Resource,
        **kwargs: Any,
    ) -> None:
        uid = str(body.metadata.uid or "")
        if type == "DELETED" or namespace is None:
            applied.forget(uid)
            return
        profilis_configs: kopf.Index[str, ConfigEntry] = kwargs["profilis_configs"]
        annotations = dict(body.metadata.annotations)
        template = _template_annotations(body)
        if ANNOTATION_INJECT not in annotations and ANNOTATION_CONFIG_HASH not in template:
            return
        if namespace in runtime.options.all_excluded_namespaces:
            # The webhook never injects there either (kube-system, the operator's own, and
            # those the chart excludes); the chart's workload guard refuses such patches.
            if applied.note_excluded(uid):
                log.info(
                    "leaving %s %s/%s alone: namespace %s is excluded",
                    resource.plural,
                    namespace,
                    name,
                    namespace,
                )
            return
        config_hash = template_hash(
            profilis_configs.get(namespace, ()),
            annotations.get(ANNOTATION_CONFIG),
            runtime.options.defaults,
        )
        changes = template_changes(annotations, template, config_hash)
        generation = body.metadata.get("generation")
        if changes and not applied.already_applied(uid, generation, changes):
            await apply(resource.plural, namespace, name, uid, changes)

    @kopf.on.event(
        API_GROUP, API_VERSION, CONFIG_PLURAL, id="reconcile_config_users", registry=registry
    )
    async def reconcile_config_users(namespace: str | None, name: str, **kwargs: Any) -> None:
        if namespace is None or namespace in runtime.options.all_excluded_namespaces:
            return
        profilis_configs: kopf.Index[str, ConfigEntry] = kwargs["profilis_configs"]
        profilis_workloads: kopf.Index[str, WorkloadRef] = kwargs["profilis_workloads"]
        entries = list(profilis_configs.get(namespace, ()))
        for entry in entries:
            if entry.name == name and entry.config is None:
                message = f"invalid; pods using it are not injected: {entry.error}"
                involved = _reference("profilis.io/v1alpha1", "ProfilisConfig", name, namespace)
                runtime.record_event(
                    EventSpec(namespace, involved, "Warning", "InvalidConfig", message)
                )
        # Any change can move a workload's hash: its own config, or "the only one" changing.
        for ref in list(profilis_workloads.get(namespace, ())):
            config_hash = template_hash(
                entries, ref.annotations.get(ANNOTATION_CONFIG), runtime.options.defaults
            )
            changes = template_changes(ref.annotations, ref.template_annotations, config_hash)
            if changes:
                await apply(ref.plural, namespace, ref.name, ref.uid, changes)


def config_status(
    entry: ConfigEntry, entries: list[ConfigEntry], refs: Iterable[WorkloadRef]
) -> dict[str, Any]:
    """The status of ProfilisConfig ``entry``: which opted-in workloads of its namespace use
    it (``entries``: every ProfilisConfig there), and whether it is valid."""
    users = sorted(
        (WORKLOAD_KINDS[ref.plural], ref.name)
        for ref in refs
        if ref.annotations.get(ANNOTATION_INJECT) == INJECT_TRUE and _uses(ref, entry.name, entries)
    )
    return {
        "workloads": [{"kind": kind, "name": name} for kind, name in users],
        "workloadCount": len(users),
        "configHash": entry.config.digest if entry.config else None,
        "valid": entry.config is not None,
        "message": entry.error or "",
        "observedGeneration": entry.generation,
    }


async def keep_config_statuses(
    runtime: OperatorRuntime,
    configs: kopf.Index[str, ConfigEntry],
    workloads: kopf.Index[str, WorkloadRef],
) -> None:
    """Forever, every ``status_interval_s``: write the status of each ProfilisConfig whose
    stored status differs from ``config_status`` (an unchanged one is not written)."""
    while True:
        for namespace in list(configs):
            entries = list(configs.get(namespace, ()))
            refs = list(workloads.get(namespace, ()))
            for entry in entries:
                status = config_status(entry, entries, refs)
                if {key: entry.status.get(key) for key in status} == status:
                    continue
                try:
                    await runtime.api.patch_config_status(namespace, entry.name, status)
                except ApiError as exc:
                    if exc.status != 404:  # deleted meanwhile: nothing to write
                        runtime.metrics.errors.labels("workloads").inc()
                        log.warning(
                            "cannot write the status of %s/%s: %s", namespace, entry.name, exc
                        )
        await asyncio.sleep(runtime.options.status_interval_s)


def _uses(ref: WorkloadRef, config_name: str, entries: list[ConfigEntry]) -> bool:
    named = ref.annotations.get(ANNOTATION_CONFIG)
    return named == config_name if named else len(entries) == 1


def _reference(api_version: str, kind: str, name: str, namespace: str) -> dict[str, str]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}


def _report(
    runtime: OperatorRuntime,
    plural: str,
    namespace: str,
    name: str,
    changes: Mapping[str, str | None],
) -> None:
    kind = WORKLOAD_KINDS[plural]
    runtime.metrics.workload_updates.labels(kind).inc()
    enabled = changes.get(ANNOTATION_INJECT, "") == INJECT_TRUE or (
        ANNOTATION_CONFIG_HASH in changes and changes[ANNOTATION_CONFIG_HASH] is not None
    )
    reason = "ProfilisEnabled" if enabled else "ProfilisDisabled"
    shown = ", ".join(f"{k}={v}" if v is not None else f"-{k}" for k, v in sorted(changes.items()))
    involved = _reference("apps/v1", kind, name, namespace)
    runtime.record_event(
        EventSpec(namespace, involved, "Normal", reason, f"pod template annotations: {shown}")
    )
    log.info("%s %s/%s: %s", kind, namespace, name, shown)
