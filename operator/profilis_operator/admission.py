"""Admission reviews in, admission reviews out: the webhook's decisions, with no HTTP in sight.

``Admission.review(raw)`` takes the request body bytes and returns an ``AdmissionOutcome``:
the response to send (always ``allowed: true``: the webhook fails open), a result label for
the metrics, and the Kubernetes Event to record, if any (never for a dry run). It never
raises. Who opts in is decided here (annotations, the namespace label, excluded namespaces);
what an opted-in pod gets is ``profilis_operator.injection.inject``.
``profilis_operator.webhook`` serves it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from profilis.k8s import (
    ANNOTATION_CONFIG,
    ANNOTATION_INJECT,
    ANNOTATION_SKIPPED,
    INJECT_ENABLED,
    INJECT_FALSE,
    INJECT_TRUE,
)
from profilis_operator.constraints import LimitRangeRules, NamespaceConstraints, QuotaRules
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.injection import (
    ClusterCapabilities,
    Injection,
    annotation_operation,
    inject,
)
from profilis_operator.names import is_dns_label

__all__ = [
    "ADMISSION_SKIP_REASONS",
    "RESULTS",
    "Admission",
    "AdmissionOutcome",
    "AdmissionState",
    "ConfigEntry",
    "EventSpec",
    "choose_config",
    "oversized",
]

log = logging.getLogger("profilis.operator.admission")

#: Values of the ``result`` label of the admission metrics.
RESULTS: Final = ("injected", "skipped", "unexpected", "malformed", "oversized", "error")
_API_VERSIONS: Final = frozenset({"admission.k8s.io/v1", "admission.k8s.io/v1beta1"})
#: Skips worth an Event: the pod asked for Profilis (or its namespace did) and did not get it.
#: Pods that never opted in are counted, not reported: that is most pods of a cluster.
_QUIET_SKIPS: Final = frozenset({"not-opted-in", "excluded-namespace", "opted-out"})
#: Why an opted-in pod is skipped before ``inject`` looks at it (``inject`` has its own
#: ``SKIP_REASONS``); each has a runbook entry.
ADMISSION_SKIP_REASONS: Final = ("operator-not-ready", "config-not-found", "invalid-config")
#: Skips that leave the pod exactly as it came: nothing was skipped (the pod is instrumented
#: already), or the pod is too malformed to be annotated safely.
_UNMARKED_SKIPS: Final = frozenset({"already-injected", "malformed-pod"})
#: The skip annotation's value is "<reason>: <message>", cut to this many characters.
_SKIP_MESSAGE_MAX: Final = 1024


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A ProfilisConfig as the webhook sees it: resolved once, when it changed."""

    name: str
    config: InjectionConfig | None
    error: str | None = None
    #: ``metadata.generation`` and the stored status, for the status writer (which writes
    #: only what differs).
    generation: int | None = None
    status: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AdmissionState:
    """What the webhook reads; kept current by the kopf handlers (``profilis_operator.handlers``).

    ``configs`` and ``namespaces`` are kopf indices (live, read-only mappings): namespace ->
    its ProfilisConfig entries, and namespace -> its ``profilis.io/inject`` label values.
    """

    defaults: InjectionConfig
    capabilities: ClusterCapabilities
    excluded_namespaces: frozenset[str]
    configs: Mapping[str, Iterable[ConfigEntry]] = field(default_factory=dict)
    namespaces: Mapping[str, Iterable[str]] = field(default_factory=dict)
    #: namespace -> its LimitRanges and ResourceQuotas, parsed (kopf indices).
    limit_ranges: Mapping[str, Iterable[LimitRangeRules]] = field(default_factory=dict)
    quotas: Mapping[str, Iterable[QuotaRules]] = field(default_factory=dict)
    #: False until kopf has listed namespaces and configs: until then every pod is let
    #: through unchanged (fail open) rather than injected with a config that may be wrong.
    ready: bool = False


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A Kubernetes Event to record about an admission (the pod may not exist yet)."""

    namespace: str
    involved: Mapping[str, str]  # apiVersion, kind, name, uid (an ObjectReference)
    type: str  # "Normal" or "Warning"
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class AdmissionOutcome:
    response: dict[str, Any]
    result: str  # one of RESULTS
    reason: str  # finer: "injected", "not-opted-in", "config-not-found", ...
    event: EventSpec | None = None


class Admission:
    """Reviews pods for the mutating webhook; remembers recent injections by pod content.

    A rollout sends the same pod (same template, no name yet) once per replica: the patch is
    computed and encoded once per template and config, then served from a small LRU cache,
    keyed by a digest of the pod (not the pod itself: 256 large pods would be a gigabyte).
    """

    def __init__(self, state: AdmissionState, *, cache_size: int = 256) -> None:
        self.state = state
        self._cache: OrderedDict[bytes, tuple[Injection, str]] = OrderedDict()
        self._cache_size = cache_size

    def review(self, raw: bytes | str) -> AdmissionOutcome:
        try:
            return self._review(raw)
        except Exception:  # fail open, always: a bug here must never block a pod
            log.exception("admission review failed; the pod is admitted unchanged")
            return AdmissionOutcome(_response(_uid_of(raw)), "error", "internal-error")

    def _review(self, raw: bytes | str) -> AdmissionOutcome:
        try:
            review = orjson.loads(raw)
        except ValueError:  # orjson.JSONDecodeError, also for invalid UTF-8
            return AdmissionOutcome(_response(""), "malformed", "not-json")
        request = review.get("request") if isinstance(review, dict) else None
        uid = request.get("uid") if isinstance(request, dict) else None
        if not isinstance(uid, str) or not isinstance(request, dict):
            return AdmissionOutcome(_response(""), "malformed", "no-request-uid")
        api_version = review.get("apiVersion")
        if api_version not in _API_VERSIONS or review.get("kind") != "AdmissionReview":
            return AdmissionOutcome(_response(uid), "malformed", "not-an-admission-review")
        api_version = str(api_version)
        resource = request.get("resource")
        pod = request.get("object")
        if not (
            isinstance(resource, dict)
            and resource.get("group") == ""
            and resource.get("resource") == "pods"
            and not request.get("subResource")
            and request.get("operation") == "CREATE"
        ):
            return AdmissionOutcome(_response(uid, api_version), "unexpected", "not-a-pod-create")
        metadata = pod.get("metadata") if isinstance(pod, dict) else None
        if not isinstance(pod, dict) or not isinstance(metadata, dict):
            return AdmissionOutcome(_response(uid, api_version), "malformed", "no-pod")
        namespace = request.get("namespace") or metadata.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            return AdmissionOutcome(_response(uid, api_version), "malformed", "no-namespace")
        # The namespace goes into an Event and its API path: only a name the API server could
        # have sent (a DNS-1123 label) gets that far.
        if not is_dns_label(namespace):
            return AdmissionOutcome(_response(uid, api_version), "malformed", "bad-namespace")
        annotations = metadata.get("annotations") or {}
        if not isinstance(annotations, dict):
            return AdmissionOutcome(_response(uid, api_version), "malformed", "bad-annotations")
        outcome = self._decide(uid, api_version, namespace, pod, annotations)
        if outcome.event is not None and request.get("dryRun") is True:
            # The Event is the webhook's only side effect, and the configuration declares
            # ``sideEffects: NoneOnDryRun``: a dry run gets the same answer and no Event.
            return replace(outcome, event=None)
        return outcome

    def _decide(
        self,
        uid: str,
        api_version: str,
        namespace: str,
        pod: dict[str, Any],
        annotations: Mapping[str, Any],
    ) -> AdmissionOutcome:
        reason = self._opt_in(namespace, annotations)
        config: InjectionConfig | None = None
        problem = ""
        if reason is None:
            config, reason, problem = self._config_for(namespace, annotations)
        if reason is not None:
            if reason in _QUIET_SKIPS:
                return AdmissionOutcome(_response(uid, api_version), "skipped", reason)
            return self._skipped(uid, api_version, namespace, pod, reason, problem)
        assert config is not None  # _config_for returns one whenever reason is None
        injection, patch = self._inject(pod, namespace, config)
        if not injection.injected:
            message = "; ".join([injection.message, *injection.notes])
            return self._skipped(uid, api_version, namespace, pod, injection.reason, message)
        message = injection.message
        if injection.notes:
            message += "; " + "; ".join(injection.notes)
        event = EventSpec(
            namespace, _involved(pod, namespace), "Normal", "ProfilisInjected", message
        )
        response = _response(uid, api_version, patch=patch)
        return AdmissionOutcome(response, "injected", "injected", event)

    def _skipped(
        self,
        uid: str,
        api_version: str,
        namespace: str,
        pod: dict[str, Any],
        reason: str,
        message: str,
    ) -> AdmissionOutcome:
        """An opted-in pod left uninstrumented: admitted, marked with the reason, reported."""
        event = self._event(namespace, pod, reason, message)
        if reason in _UNMARKED_SKIPS:
            return AdmissionOutcome(_response(uid, api_version), "skipped", reason, event)
        text = f"{reason}: {message}" if message else reason
        operation = annotation_operation(pod, ANNOTATION_SKIPPED, text[:_SKIP_MESSAGE_MAX])
        patch = base64.b64encode(orjson.dumps([operation])).decode("ascii")
        return AdmissionOutcome(_response(uid, api_version, patch=patch), "skipped", reason, event)

    def _opt_in(self, namespace: str, annotations: Mapping[str, Any]) -> str | None:
        """None if the pod opted in (itself or through its namespace), else the skip reason."""
        state = self.state
        if namespace in state.excluded_namespaces:
            return "excluded-namespace"
        wanted = annotations.get(ANNOTATION_INJECT)
        if wanted == INJECT_FALSE:
            return "opted-out"
        if not state.ready:
            return "operator-not-ready"
        if wanted == INJECT_TRUE or INJECT_ENABLED in state.namespaces.get(namespace, ()):
            return None
        return "not-opted-in"

    def _config_for(
        self, namespace: str, annotations: Mapping[str, Any]
    ) -> tuple[InjectionConfig | None, str | None, str]:
        name = annotations.get(ANNOTATION_CONFIG)
        entries = self.state.configs.get(namespace, ())
        return choose_config(entries, name if isinstance(name, str) else None, self.state.defaults)

    def _inject(
        self, pod: dict[str, Any], namespace: str, config: InjectionConfig
    ) -> tuple[Injection, str]:
        """The injection and its patch, base64 JSON as the response carries it."""
        capabilities = self.state.capabilities
        constraints = NamespaceConstraints(
            tuple(self.state.limit_ranges.get(namespace, ())),
            tuple(self.state.quotas.get(namespace, ())),
        )
        if constraints.limit_ranges or constraints.quotas:
            # Not cached: a quota's usage changes with every pod the namespace gets.
            injection = inject(pod, config, capabilities, constraints)
            patch = base64.b64encode(orjson.dumps(injection.patch)).decode("ascii")
            return injection, patch
        key = hashlib.blake2b(
            orjson.dumps(
                [pod, namespace, config.digest, capabilities.native_sidecars],
                option=orjson.OPT_SORT_KEYS,
            ),
            digest_size=32,
        ).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        injection = inject(pod, config, capabilities)
        patch = base64.b64encode(orjson.dumps(injection.patch)).decode("ascii")
        self._cache[key] = (injection, patch)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return injection, patch

    def _event(
        self, namespace: str, pod: Mapping[str, Any], reason: str, message: str
    ) -> EventSpec:
        text = f"Profilis not injected ({reason})" + (f": {message}" if message else "")
        return EventSpec(namespace, _involved(pod, namespace), "Warning", "ProfilisSkipped", text)


def choose_config(
    entries: Iterable[ConfigEntry], name: str | None, defaults: InjectionConfig
) -> tuple[InjectionConfig | None, str | None, str]:
    """The config a pod (or workload) gets: (config, None, "") or (None, skip reason, message).

    The ProfilisConfig ``name`` names (``profilis.io/config``), else the namespace's only one,
    else (none, or several and no name) the operator's defaults.
    """
    entries = list(entries)
    if name:
        chosen = [entry for entry in entries if entry.name == name]
        if not chosen:
            return None, "config-not-found", f"ProfilisConfig {name!r} not found"
    elif len(entries) == 1:
        chosen = entries
    else:
        return defaults, None, ""
    entry = chosen[0]
    if entry.config is None:
        return None, "invalid-config", f"ProfilisConfig {entry.name!r} is invalid: {entry.error}"
    return entry.config, None, ""


def oversized(uid: str) -> AdmissionOutcome:
    """The answer to a review too large to process (``WebhookLimits.max_review_bytes``):
    admitted unchanged, like any other the webhook will not look into."""
    return AdmissionOutcome(_response(uid), "oversized", "review-too-large")


def _response(uid: str, api_version: str = "admission.k8s.io/v1", **extra: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"uid": uid, "allowed": True}
    if "patch" in extra:
        payload["patchType"] = "JSONPatch"
        payload["patch"] = extra["patch"]
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": payload}


def _uid_of(raw: bytes | str) -> str:
    """The request uid, best effort, for the answer to a request that made the review fail."""
    try:
        uid = orjson.loads(raw)["request"]["uid"]
    except Exception:
        return ""
    return uid if isinstance(uid, str) else ""


def _involved(pod: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """What an Event is about: the pod's controller (a pod being created has no name or uid
    yet when a ReplicaSet makes it), else the pod itself."""
    metadata = pod.get("metadata") or {}
    owners: Collection[Any] = metadata.get("ownerReferences") or ()
    for owner in owners if isinstance(owners, list) else ():
        if isinstance(owner, dict) and owner.get("controller") and owner.get("name"):
            return {
                "apiVersion": str(owner.get("apiVersion", "")),
                "kind": str(owner.get("kind", "")),
                "name": str(owner["name"]),
                "namespace": namespace,
                "uid": str(owner.get("uid", "")),
            }
    name = metadata.get("name") or metadata.get("generateName") or "unknown"
    return {"apiVersion": "v1", "kind": "Pod", "name": str(name), "namespace": namespace}
