"""What an injection adds to a pod: the agent installer, the sidecar, and the env and mounts of
an instrumented container. ``profilis_operator.injection`` decides whether and where they go;
docs/security.md lists them (a test holds the two together).

Every value that reaches an argv is a checked config value written as ``--flag=value``, so a
value that starts with "-" is never read as a flag.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from profilis.config import DEFAULT_COLLECTOR_ADDRESS, DEFAULTS_VAR
from profilis.k8s import (
    AGENT_MOUNT_PATH,
    AGENT_VOLUME,
    INIT_CONTAINER_NAME,
    METRICS_PORT_NAME,
    SIDECAR_CONTAINER_NAME,
    SOCKET_DIR,
    SOCKET_VOLUME,
)
from profilis_operator.effective_config import InjectionConfig

__all__ = [
    "APP_PYTHONPATH_VAR",
    "SECURITY_CONTEXT",
    "UI_TOKEN_VAR",
    "UI_VAR",
    "VOLUMES",
    "agent_env",
    "installer",
    "instrument",
    "list_at",
    "sidecar",
    "sidecar_env",
]

#: The non-root user of the Profilis image (distroless' "nonroot").
_NON_ROOT_ID: Final = 65532
#: Every injected container's: what Pod Security "restricted" asks for, and no more.
SECURITY_CONTEXT: Final = {
    "runAsNonRoot": True,
    "runAsUser": _NON_ROOT_ID,
    "runAsGroup": _NON_ROOT_ID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: The pod's two emptyDirs: the agent payload, and the directory of the sidecar's socket.
VOLUMES: Final = (
    {"name": AGENT_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
    {"name": SOCKET_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
)
#: Holds the app's own PYTHONPATH when it comes from valueFrom (a Secret, a ConfigMap): the
#: kubelet expands "$(PROFILIS_APP_PYTHONPATH)" in the PYTHONPATH that follows it.
APP_PYTHONPATH_VAR: Final = "PROFILIS_APP_PYTHONPATH"
#: The sidecar reads its pod's name and namespace for its status page; apps get neither.
_DOWNWARD_API: Final = (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"))
#: The sidecar's dashboard switch ("on" or "off") and its token (read by profilis_sidecar.cli).
UI_VAR: Final = "PROFILIS_SIDECAR_UI"
UI_TOKEN_VAR: Final = "PROFILIS_SIDECAR_UI_TOKEN"


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


def instrument(container: dict[str, Any], config: InjectionConfig, service: str) -> None:
    """Put the agent on ``container``'s import path and give it its settings and mounts."""
    env: list[dict[str, Any]] = list_at(container, "env")
    defined = {item.get("name") for item in env if isinstance(item, Mapping)}
    index = next((i for i, item in enumerate(env) if item.get("name") == "PYTHONPATH"), None)
    if index is None:
        # An envFrom source may define PYTHONPATH; "$(PYTHONPATH)" keeps its value (the
        # kubelet expands references to envFrom variables too).
        tail = ":$(PYTHONPATH)" if container.get("envFrom") else ""
        env.append({"name": "PYTHONPATH", "value": AGENT_MOUNT_PATH + tail})
    elif "valueFrom" in env[index]:
        # Its value is unknown here: read it into a variable of ours, placed just before.
        source = copy.deepcopy(env[index]["valueFrom"])
        env[index] = {"name": "PYTHONPATH", "value": f"{AGENT_MOUNT_PATH}:$({APP_PYTHONPATH_VAR})"}
        env.insert(index, {"name": APP_PYTHONPATH_VAR, "valueFrom": source})
    else:
        existing = env[index].get("value") or ""
        env[index]["value"] = f"{AGENT_MOUNT_PATH}:{existing}" if existing else AGENT_MOUNT_PATH
    # Variables the container sets itself win: a per-container override is a feature.
    settings = [(name, value) for name, value in agent_env(config, service) if name not in defined]
    if container.get("envFrom"):
        # An env entry would win over the same variable from the app's ConfigMap or Secret,
        # whose keys are unknown here: the settings go one layer below the environment.
        layer = json.dumps(dict(settings), separators=(",", ":"))
        env.append({"name": DEFAULTS_VAR, "value": layer})
    else:
        env.extend({"name": name, "value": value} for name, value in settings)
    mounts = list_at(container, "volumeMounts")
    mounts.append({"name": AGENT_VOLUME, "mountPath": AGENT_MOUNT_PATH, "readOnly": True})
    mounts.append({"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR})


def installer(config: InjectionConfig) -> dict[str, Any]:
    """The init container that copies the agent payload into its emptyDir."""
    return {
        "name": INIT_CONTAINER_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["profilis-agent", "install", AGENT_MOUNT_PATH],
        "resources": _plain_resources(config.agent_resources),
        "securityContext": copy.deepcopy(SECURITY_CONTEXT),
        "volumeMounts": [{"name": AGENT_VOLUME, "mountPath": AGENT_MOUNT_PATH}],
    }


def sidecar(config: InjectionConfig, service: str, metrics_port: int) -> dict[str, Any]:
    """The pod's collector, serving /metrics on ``metrics_port`` (named ``profilis-http``)."""
    command = [
        "profilis-sidecar",
        f"--listen={DEFAULT_COLLECTOR_ADDRESS}",
        f"--metrics-port={metrics_port}",
        # Explicit, though the default: Prometheus scrapes the pod IP.
        "--metrics-host=0.0.0.0",
        f"--service={service}",
    ]
    if "otlp" in config.exporters and config.otlp_endpoint:
        command.append(f"--forward=otlp:{config.otlp_endpoint}")
    if "console" in config.exporters:
        command.append("--forward=console:json")
    # /healthz answers once the socket is bound (the HTTP server starts after it). Not
    # /readyz: a failing forwarder (an OTLP endpoint down) makes it 503, and a startup probe
    # on it would restart the sidecar in a loop and, as a native sidecar, hold the app back.
    healthz = {"path": "/healthz", "port": METRICS_PORT_NAME}
    return {
        "name": SIDECAR_CONTAINER_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": sidecar_env(config),
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}],
        # The app starts once this passes (native sidecars), so its first batches find the
        # socket; 30 x 1 s covers a slow image start.
        "startupProbe": {"httpGet": healthz, "periodSeconds": 1, "failureThreshold": 30},
        # No readiness probe on purpose: telemetry must never take the app out of service.
        "livenessProbe": {
            "httpGet": dict(healthz),
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": _plain_resources(config.sidecar_resources),
        "securityContext": copy.deepcopy(SECURITY_CONTEXT),
        "volumeMounts": [{"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR}],
    }


def sidecar_env(config: InjectionConfig) -> list[dict[str, Any]]:
    """The sidecar's env: its pod's identity, and the dashboard's switch and token.

    The token is a ``secretKeyRef``, so its value never appears in the pod spec, the
    admission patch or the operator (which has no access to Secrets). The reference is
    optional and the switch says "token": with the Secret missing, the sidecar starts with
    the page off, never open, and a typo in a Secret's name cannot keep the app from starting.
    """
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for name, path in _DOWNWARD_API
    ]
    token = config.dashboard_token if config.dashboard_enabled else None
    switch = "off" if not config.dashboard_enabled else "on" if token is None else "token"
    env.append({"name": UI_VAR, "value": switch})
    if token is not None:
        reference = {"name": token.name, "key": token.key, "optional": True}
        env.append({"name": UI_TOKEN_VAR, "valueFrom": {"secretKeyRef": reference}})
    return env


def list_at(parent: dict[str, Any], key: str) -> list[Any]:
    """``parent[key]``, a list, made empty when absent or null (a null is valid JSON there)."""
    if parent.get(key) is None:
        parent[key] = []
    items: list[Any] = parent[key]
    return items


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _plain_resources(resources: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(amounts) for kind, amounts in resources.items()}
