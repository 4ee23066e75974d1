"""The effective injection config: a ProfilisConfig spec laid over the operator's defaults.

``resolve(spec, defaults)`` turns the custom resource's spec (camelCase, as in
``charts/profilis/crds/profilisconfig.yaml``) into a checked, frozen ``InjectionConfig``;
``profilis_operator.injection`` turns that into env vars and sidecar flags. The agent-side
values are checked by ``profilis.config.Config`` itself, so the operator can never hand a pod
a setting its agent would refuse.

Merging is section by section, mirroring what the API server does with the CRD's schema
defaults: a section written in a ProfilisConfig is complete (its omitted fields take the
built-in defaults), a section left out comes whole from the operator's defaults (Helm
values). The sidecar image and the resources have no schema default: left out, they are
always the operator's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from profilis import __version__
from profilis._validation import check_bool, check_float, check_int
from profilis.config import INSTRUMENTATIONS, Config
from profilis.errors import ConfigError
from profilis.k8s import DEFAULT_IMAGE_REPOSITORY, DEFAULT_METRICS_PORT
from profilis_operator.errors import InvalidConfigError
from profilis_operator.pod_resources import amounts_of

__all__ = [
    "BUILTIN_SPEC",
    "DEFAULT_IMAGE",
    "EXPORTERS",
    "PULL_POLICIES",
    "InjectionConfig",
    "Resources",
    "SecretKeyRef",
    "resolve",
]

#: Where the sidecar sends events besides its own /metrics: a subset of ``profilis.config``'s
#: exporters (inside a pod the agent always uses "collector", the socket to the sidecar).
EXPORTERS: Final = ("prometheus", "otlp", "console")
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
#: Section -> field -> built-in default. The CRD's schema defaults must equal these (a test
#: holds them together); they are Profilis' own defaults, read from ``profilis.config``.
_BUILTIN: Final = Config()
BUILTIN_SPEC: Final[Mapping[str, Mapping[str, object]]] = {
    "sampling": {"rate": _BUILTIN.sample_rate, "excludedRoutes": []},
    "collector": {
        "queueSize": _BUILTIN.queue_size,
        "batchMax": _BUILTIN.batch_max,
        "flushIntervalSeconds": _BUILTIN.flush_interval_s,
        "dropOldest": _BUILTIN.drop_oldest,
    },
    "exporters": {"enabled": ["prometheus"]},
    "redaction": {"sql": _BUILTIN.redact},
    "instrumentations": {"disabled": []},
    "agent": {"debug": _BUILTIN.debug},
    "sidecar": {"imagePullPolicy": "IfNotPresent", "metricsPort": DEFAULT_METRICS_PORT},
    "dashboard": {"enabled": True},
}
#: Fields with no schema default: a ProfilisConfig that leaves them out gets the operator's.
_OPERATOR_FIELDS: Final = {"sidecar": ("image", "resources"), "agent": ("resources",)}
_OPTIONAL_FIELDS: Final = {"exporters": ("otlpEndpoint",), "dashboard": ("tokenSecretRef",)}
#: A Secret's name (a DNS subdomain) and a key of its data, as the API server checks them.
_SECRET_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")
#: Requests sized for the sidecar's measured idle use. Requests and limits of both CPU and
#: memory: a ResourceQuota on any of them refuses a pod whose containers leave one out, and
#: LimitRanger's defaults are applied before the webhook adds its containers. The CPU limit
#: leaves room for bursts (a throttled sidecar shows as agent queue depth, not as drops).
_DEFAULT_SIDECAR_RESOURCES: Final = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "500m", "memory": "128Mi"},
}
_DEFAULT_AGENT_RESOURCES: Final = {
    "requests": {"cpu": "10m", "memory": "16Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}
_QUANTITY_KEYS: Final = frozenset({"cpu", "memory", "ephemeral-storage"})
#: Kubernetes' own quantity syntax: a pod with anything else would be refused by the API
#: server after the webhook said yes, and the app would not start at all.
_QUANTITY: Final = re.compile(
    r"[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
DEFAULT_IMAGE: Final = f"{DEFAULT_IMAGE_REPOSITORY}:{__version__}"

Resources = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """One key of a Secret in the pod's own namespace (a container's ``secretKeyRef``)."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class InjectionConfig:
    """Everything the injection needs, checked. Build it with ``resolve``."""

    # The `service` label; None: derived from the pod (app.kubernetes.io/name, app, owner).
    service_name: str | None = None
    sample_rate: float = _BUILTIN.sample_rate
    exclude_routes: tuple[str, ...] = ()
    queue_size: int = _BUILTIN.queue_size
    batch_max: int = _BUILTIN.batch_max
    flush_interval_s: float = _BUILTIN.flush_interval_s
    drop_oldest: bool = _BUILTIN.drop_oldest
    exporters: tuple[str, ...] = ("prometheus",)
    otlp_endpoint: str | None = None
    redact: bool = _BUILTIN.redact
    disabled_instrumentations: tuple[str, ...] = ()
    debug: bool = _BUILTIN.debug
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    metrics_port: int = DEFAULT_METRICS_PORT
    sidecar_resources: Resources = field(default_factory=lambda: _DEFAULT_SIDECAR_RESOURCES)
    agent_resources: Resources = field(default_factory=lambda: _DEFAULT_AGENT_RESOURCES)
    #: The sidecar's /_profilis/ page and its status.json; off: the sidecar serves neither.
    dashboard_enabled: bool = True
    #: The token the page asks for, from a Secret of the pod's namespace; None: no token.
    dashboard_token: SecretKeyRef | None = None
    #: Short hash of all of the above: it changes exactly when an injected pod would differ.
    digest: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "digest", hashlib.sha256(canonical.encode()).hexdigest()[:16])

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (the digest left out)."""
        values = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "digest"
        }
        return json.loads(json.dumps(values, default=_plain))  # type: ignore[no-any-return]

    def to_spec(self) -> dict[str, Any]:
        """This config as a ProfilisConfig spec: ``resolve({}, config.to_spec()) == config``."""
        return {
            **({"serviceName": self.service_name} if self.service_name else {}),
            "sampling": {"rate": self.sample_rate, "excludedRoutes": list(self.exclude_routes)},
            "collector": {
                "queueSize": self.queue_size,
                "batchMax": self.batch_max,
                "flushIntervalSeconds": self.flush_interval_s,
                "dropOldest": self.drop_oldest,
            },
            "exporters": {
                "enabled": list(self.exporters),
                **({"otlpEndpoint": self.otlp_endpoint} if self.otlp_endpoint else {}),
            },
            "redaction": {"sql": self.redact},
            "instrumentations": {"disabled": list(self.disabled_instrumentations)},
            "agent": {"debug": self.debug, "resources": _plain(self.agent_resources)},
            "sidecar": {
                "image": self.image,
                "imagePullPolicy": self.image_pull_policy,
                "metricsPort": self.metrics_port,
                "resources": _plain(self.sidecar_resources),
            },
            "dashboard": {
                "enabled": self.dashboard_enabled,
                **(
                    {"tokenSecretRef": _plain(self.dashboard_token)} if self.dashboard_token else {}
                ),
            },
        }


def _plain(value: object) -> object:
    """A copy in plain dicts (resources are read-only mappings, a Secret reference a
    dataclass)."""
    if isinstance(value, SecretKeyRef):
        return {"name": value.name, "key": value.key}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def resolve(
    spec: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
) -> InjectionConfig:
    """The effective config of ``spec`` (a ProfilisConfig's spec) over ``defaults``.

    ``defaults`` has the same shape as a spec (the operator's defaults, from Helm values).
    Raises ``InvalidConfigError`` naming the field, e.g. ``collector.batchMax``.
    """
    spec = _mapping("spec", spec or {})
    defaults = _mapping("defaults", defaults or {})
    _check_keys("spec", spec, {*BUILTIN_SPEC, "serviceName"})
    _check_keys("defaults", defaults, {*BUILTIN_SPEC, "serviceName"})
    merged: dict[str, dict[str, Any]] = {}
    for section, builtin in BUILTIN_SPEC.items():
        allowed = {*builtin, *_OPERATOR_FIELDS.get(section, ()), *_OPTIONAL_FIELDS.get(section, ())}
        own = _mapping(section, spec.get(section, {}))
        fallback = _mapping(section, defaults.get(section, {}))
        _check_keys(section, own, allowed)
        _check_keys(section, fallback, allowed)
        chosen = own if section in spec else fallback
        values = {**builtin, **chosen}
        for name in _OPERATOR_FIELDS.get(section, ()):
            if name not in values and name in fallback:
                values[name] = fallback[name]
        merged[section] = values
    service = spec.get("serviceName", defaults.get("serviceName"))
    try:
        return _build(merged, service)
    except ConfigError as exc:
        raise InvalidConfigError(str(exc)) from None


def _build(merged: Mapping[str, Mapping[str, Any]], service: object) -> InjectionConfig:
    sampling, collector = merged["sampling"], merged["collector"]
    exporters_section, sidecar = merged["exporters"], merged["sidecar"]
    if service is not None and not (
        isinstance(service, str) and 0 < len(service) <= 255 and service.isprintable()
    ):
        accepted = "a non-empty string of at most 255 printable characters"
        raise ConfigError("serviceName", accepted, service)
    exporters = _names("exporters.enabled", exporters_section["enabled"], EXPORTERS)
    otlp_endpoint = exporters_section.get("otlpEndpoint")
    disabled = _names(
        "instrumentations.disabled", merged["instrumentations"]["disabled"], INSTRUMENTATIONS
    )
    routes = sampling["excludedRoutes"]
    if not isinstance(routes, list) or not all(isinstance(r, str) and "," not in r for r in routes):
        accepted = "a list of path prefixes starting with '/', without commas"
        raise ConfigError("sampling.excludedRoutes", accepted, routes)
    # The agent-side values go through the agent's own rules; its field names become spec paths.
    try:
        Config(
            service_name=service if isinstance(service, str) else "unknown_service",
            sample_rate=check_float("sampling.rate", sampling["rate"], minimum=0, maximum=1),
            exclude_routes=tuple(routes),
            queue_size=collector["queueSize"],
            batch_max=collector["batchMax"],
            flush_interval_s=collector["flushIntervalSeconds"],
            drop_oldest=collector["dropOldest"],
            exporters=("collector",),
            otlp_endpoint=otlp_endpoint,
            disabled_instrumentations=frozenset(disabled),
            redact=merged["redaction"]["sql"],
            debug=merged["agent"]["debug"],
        )
    except ConfigError as exc:
        raise ConfigError(
            _SPEC_PATHS.get(exc.setting, exc.setting), exc.accepted, exc.got
        ) from None
    if "otlp" in exporters and otlp_endpoint is None:
        accepted = "an http:// or https:// URL when the otlp exporter is enabled"
        raise ConfigError("exporters.otlpEndpoint", accepted, None)
    image = sidecar.get("image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise ConfigError("sidecar.image", "an image reference without spaces", image)
    if sidecar["imagePullPolicy"] not in PULL_POLICIES:
        raise ConfigError(
            "sidecar.imagePullPolicy", f"one of {PULL_POLICIES}", sidecar["imagePullPolicy"]
        )
    return InjectionConfig(
        service_name=service if isinstance(service, str) else None,
        sample_rate=float(sampling["rate"]),
        exclude_routes=tuple(dict.fromkeys(routes)),
        queue_size=collector["queueSize"],
        batch_max=collector["batchMax"],
        flush_interval_s=float(collector["flushIntervalSeconds"]),
        drop_oldest=collector["dropOldest"],
        exporters=exporters,
        otlp_endpoint=otlp_endpoint,
        redact=merged["redaction"]["sql"],
        disabled_instrumentations=disabled,
        debug=check_bool("agent.debug", merged["agent"]["debug"]),
        image=image,
        image_pull_policy=sidecar["imagePullPolicy"],
        metrics_port=check_int(
            "sidecar.metricsPort", sidecar["metricsPort"], minimum=1, maximum=65535
        ),
        sidecar_resources=_resources(
            "sidecar.resources", sidecar.get("resources", _DEFAULT_SIDECAR_RESOURCES)
        ),
        agent_resources=_resources(
            "agent.resources", merged["agent"].get("resources", _DEFAULT_AGENT_RESOURCES)
        ),
        dashboard_enabled=check_bool("dashboard.enabled", merged["dashboard"]["enabled"]),
        dashboard_token=_secret_key_ref(
            "dashboard.tokenSecretRef", merged["dashboard"].get("tokenSecretRef")
        ),
    )


# profilis.config field -> the spec path a user wrote.
_SPEC_PATHS: Final = {
    "sample_rate": "sampling.rate",
    "exclude_routes": "sampling.excludedRoutes",
    "queue_size": "collector.queueSize",
    "batch_max": "collector.batchMax",
    "flush_interval_s": "collector.flushIntervalSeconds",
    "drop_oldest": "collector.dropOldest",
    "otlp_endpoint": "exporters.otlpEndpoint",
    "disabled_instrumentations": "instrumentations.disabled",
    "redact": "redaction.sql",
    "debug": "agent.debug",
    "service_name": "serviceName",
}


def _mapping(where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidConfigError(f"{where} must be an object, got {value!r}")
    return value


def _check_keys(where: str, value: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidConfigError(
            f"{where} has unknown field(s) {unknown}; known: {sorted(allowed)}"
        )


def _names(
    setting: str, value: object, accepted: tuple[str, ...] | frozenset[str]
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v in accepted for v in value):
        raise ConfigError(setting, f"a list of names from {sorted(accepted)}", value)
    return tuple(dict.fromkeys(value))


def _secret_key_ref(setting: str, value: object) -> SecretKeyRef | None:
    """``{name, key}`` of a Secret in the pod's namespace, checked as the API server would:
    a bad reference here would get every injected pod refused (or stuck) later."""
    if value is None:
        return None
    accepted = "{name: a Secret name (DNS subdomain), key: a data key ([-._a-zA-Z0-9]+)}"
    if not isinstance(value, Mapping) or set(value) != {"name", "key"}:
        raise ConfigError(setting, accepted, value)
    name, key = value["name"], value["key"]
    if not isinstance(name, str) or len(name) > 253 or not _SECRET_NAME.fullmatch(name):
        raise ConfigError(f"{setting}.name", "a Secret name (lowercase DNS subdomain)", name)
    if (
        not isinstance(key, str)
        or len(key) > 253
        or key in {".", ".."}
        or not _SECRET_KEY.fullmatch(key)
    ):
        raise ConfigError(f"{setting}.key", "a Secret data key ([-._a-zA-Z0-9]+)", key)
    return SecretKeyRef(name, key)


def _resources(setting: str, value: object) -> Resources:
    """requests/limits of cpu, memory, ephemeral-storage; quantities kept as strings."""
    accepted = "{requests: {cpu|memory|ephemeral-storage: quantity}, limits: {...}}"
    if not isinstance(value, Mapping) or not set(value) <= {"requests", "limits"}:
        raise ConfigError(setting, accepted, value)
    result: dict[str, dict[str, str]] = {}
    for kind, amounts in value.items():
        if not isinstance(amounts, Mapping) or not set(amounts) <= _QUANTITY_KEYS:
            raise ConfigError(f"{setting}.{kind}", accepted, amounts)
        for name, amount in amounts.items():
            if isinstance(amount, bool) or not isinstance(amount, (str, int)):
                amount_text = ""
            else:
                amount_text = str(amount)
            if not _QUANTITY.fullmatch(amount_text):
                raise ConfigError(
                    f"{setting}.{kind}.{name}", "a quantity such as 100m or 64Mi", amount
                )
        result[kind] = {name: str(amount) for name, amount in amounts.items()}
    # The API server refuses a container whose request is above its limit.
    requests, limits = amounts_of(result.get("requests")), amounts_of(result.get("limits"))
    for name, limit in limits.items():
        if name in requests and requests[name] > limit:
            accepted = f"at most the limit {result['limits'][name]}"
            raise ConfigError(f"{setting}.requests.{name}", accepted, result["requests"][name])
    return result
