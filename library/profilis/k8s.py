"""Kubernetes names Profilis users and parts rely on: annotation keys, labels, paths, ports.

Constants only, standard library only. The operator (``profilis_operator``) writes these names
into pods; the Helm chart, the dashboards and the docs refer to them; the agent and the sidecar
find each other through the socket path. Changing one is a breaking change for users.
"""

from __future__ import annotations

from typing import Final

from profilis.config import DEFAULT_COLLECTOR_ADDRESS

__all__ = [
    "AGENT_MOUNT_PATH",
    "AGENT_VOLUME",
    "ANNOTATION_CONFIG",
    "ANNOTATION_CONFIG_HASH",
    "ANNOTATION_CONTAINER_NAMES",
    "ANNOTATION_INJECT",
    "ANNOTATION_SKIPPED",
    "ANNOTATION_STATUS",
    "API_GROUP",
    "API_VERSION",
    "CONFIG_KIND",
    "CONFIG_PLURAL",
    "DEFAULT_COLLECTOR_ADDRESS",
    "DEFAULT_IMAGE_REPOSITORY",
    "DEFAULT_METRICS_PORT",
    "INIT_CONTAINER_NAME",
    "INJECT_DISABLED",
    "INJECT_ENABLED",
    "INJECT_FALSE",
    "INJECT_TRUE",
    "LABEL_NAMESPACE_INJECT",
    "METRICS_PORT_NAME",
    "SIDECAR_CONTAINER_NAME",
    "SOCKET_DIR",
    "SOCKET_VOLUME",
]

#: The API group of Profilis' own resources, and the prefix of every annotation and label.
API_GROUP: Final = "profilis.io"
API_VERSION: Final = "v1alpha1"
#: The custom resource that configures injection (namespaced); its plural names the API path.
CONFIG_KIND: Final = "ProfilisConfig"
CONFIG_PLURAL: Final = "profilisconfigs"

# --- opting in and out --------------------------------------------------------------------

#: On a workload, its pod template or a pod: "true" opts in, "false" opts out (and wins over
#: the namespace label).
ANNOTATION_INJECT: Final = "profilis.io/inject"
INJECT_TRUE: Final = "true"
INJECT_FALSE: Final = "false"
#: Namespace label: "enabled" instruments every pod of the namespace that does not opt out;
#: "disabled" keeps the webhook away from the namespace altogether (the chart's selector).
LABEL_NAMESPACE_INJECT: Final = "profilis.io/inject"
INJECT_ENABLED: Final = "enabled"
INJECT_DISABLED: Final = "disabled"
#: The ProfilisConfig (same namespace) to use; default: the only one there, else the defaults.
ANNOTATION_CONFIG: Final = "profilis.io/config"
#: Comma list of the containers to instrument; default: the first container.
ANNOTATION_CONTAINER_NAMES: Final = "profilis.io/container-names"

# --- what the operator writes ----------------------------------------------------------------

#: On an injected pod: JSON with the Profilis version and the config hash. Its presence means
#: "already injected": the webhook never injects twice.
ANNOTATION_STATUS: Final = "profilis.io/status"
#: On an opted-in pod the webhook left alone: "<reason>: <message>" (the runbook has an entry
#: for each reason). The same reason is on the ProfilisSkipped Event and in the metrics.
ANNOTATION_SKIPPED: Final = "profilis.io/skipped"
#: On a workload's pod template: the hash of the effective config, so a change rolls the pods.
ANNOTATION_CONFIG_HASH: Final = "profilis.io/config-hash"

# --- the injected pod --------------------------------------------------------------------------

#: The init container that copies the agent, and the sidecar that collects for the pod.
INIT_CONTAINER_NAME: Final = "profilis-agent-install"
SIDECAR_CONTAINER_NAME: Final = "profilis-sidecar"
#: emptyDir with the agent payload, mounted read-only into the instrumented containers.
AGENT_VOLUME: Final = "profilis-agent"
AGENT_MOUNT_PATH: Final = "/profilis-agent"
#: emptyDir shared by every container of the pod, holding the sidecar's datagram socket.
SOCKET_VOLUME: Final = "profilis-run"
SOCKET_DIR: Final = DEFAULT_COLLECTOR_ADDRESS.removeprefix("unix://").rpartition("/")[0]
#: The sidecar's /metrics port and its name in pod specs (PodMonitors select it by name).
METRICS_PORT_NAME: Final = "profilis-http"
DEFAULT_METRICS_PORT: Final = 9464
#: The image with the agent payload and the sidecar (tagged with the Profilis version).
DEFAULT_IMAGE_REPOSITORY: Final = "profilis/profilis"
