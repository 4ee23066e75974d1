"""``OperatorOptions``: every knob of the operator, from flags and environment, checked once.

Built by ``profilis_operator.cli``; the Helm chart sets the environment variables (image,
defaults file, excluded namespaces, sidecar mode) and the flags (ports, TLS). A bad value
raises ``OptionsError`` naming the flag or variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from profilis_operator.effective_config import InjectionConfig, resolve
from profilis_operator.errors import InvalidConfigError, OperatorError

__all__ = ["NativeSidecars", "OperatorOptions", "OptionsError", "load_defaults"]

NativeSidecars = Literal["auto", "always", "never"]
#: Namespaces the webhook never touches, besides the operator's own.
ALWAYS_EXCLUDED: Final = frozenset({"kube-system"})


class OptionsError(OperatorError, ValueError):
    """A flag or environment variable of the operator has a value it cannot use."""


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    # The operator's own namespace (downward API POD_NAMESPACE): never injected into, and
    # the namespace of the webhook Service named in self-signed certificates.
    namespace: str = "profilis-system"
    # Interface and port of the HTTPS webhook (the Service targets 9443).
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 9443
    # Serving certificate and key (a mounted Secret), re-read every cert_reload_interval_s.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    cert_reload_interval_s: float = 10.0
    # Generate a CA and certificate at start-up (cryptography) and patch the caBundle of
    # the MutatingWebhookConfiguration webhook_config_name; files are written to cert_dir.
    self_signed: bool = False
    cert_dir: Path = Path("/tmp/profilis-webhook-certs")
    webhook_config_name: str = "profilis"
    # How often the caBundle is checked and restored (a helm upgrade may reset it, and the
    # configuration may appear after the operator): the longest a stale caBundle can last.
    ca_bundle_interval_s: float = 30.0
    webhook_service: str = "profilis-webhook"
    extra_hostnames: tuple[str, ...] = ()
    # /healthz, /readyz and /metrics.
    health_host: str = "0.0.0.0"
    health_port: int = 8080
    # Namespaces excluded on top of kube-system and the operator's own.
    excluded_namespaces: frozenset[str] = frozenset()
    # Native sidecars (init containers that keep running) need Kubernetes 1.29+; "auto" asks
    # the API server at start-up and falls back to an ordinary container when it cannot tell.
    native_sidecars: NativeSidecars = "auto"
    # The defaults for pods that use no ProfilisConfig (a ProfilisConfig spec, from Helm).
    defaults: InjectionConfig = field(default_factory=InjectionConfig)
    # Seconds between refreshes of each ProfilisConfig's status (its workload list).
    status_interval_s: float = 10.0
    # What clients of the webhook port can hold (profilis_operator.webhook.WebhookLimits):
    # open connections, seconds to finish the TLS handshake, seconds without a whole request
    # in, and the largest review processed (bytes; larger ones are admitted unchanged).
    webhook_max_connections: int = 128
    webhook_handshake_timeout_s: float = 5.0
    webhook_idle_timeout_s: float = 30.0
    webhook_max_review_bytes: int = 2 << 20

    def __post_init__(self) -> None:
        for name in ("webhook_port", "health_port"):
            port = getattr(self, name)
            if not isinstance(port, int) or not 1 <= port <= 65535:
                flag = "--" + name.replace("_", "-")
                raise OptionsError(f"{flag} must be a port in [1, 65535], got {port!r}")
        if self.self_signed and (self.tls_cert_file or self.tls_key_file):
            raise OptionsError(
                "--self-signed and --tls-cert-file/--tls-key-file exclude each other"
            )
        if not self.self_signed and (self.tls_cert_file is None or self.tls_key_file is None):
            raise OptionsError("give --tls-cert-file and --tls-key-file, or --self-signed")
        if self.native_sidecars not in ("auto", "always", "never"):
            raise OptionsError(
                f"native sidecars must be auto, always or never, got {self.native_sidecars!r}"
            )
        for name in ("cert_reload_interval_s", "ca_bundle_interval_s", "status_interval_s"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                flag = "--" + name.removesuffix("_s").replace("_", "-")
                raise OptionsError(f"{flag} must be in (0, 3600] seconds, got {value!r}")

        if not isinstance(self.webhook_max_connections, int) or not (
            1 <= self.webhook_max_connections <= 10_000
        ):
            raise OptionsError(
                "--webhook-max-connections must be an integer in [1, 10000], "
                f"got {self.webhook_max_connections!r}"
            )
        for name in ("webhook_handshake_timeout_s", "webhook_idle_timeout_s"):
            value = getattr(self, name)
            if not 0 < value <= 600:
                flag = "--" + name.removesuffix("_s").replace("_", "-")
                raise OptionsError(f"{flag} must be in (0, 600] seconds, got {value!r}")
        if not isinstance(self.webhook_max_review_bytes, int) or not (
            64 << 10 <= self.webhook_max_review_bytes <= 64 << 20
        ):
            raise OptionsError(
                "--webhook-max-review-bytes must be an integer in [65536, 67108864], "
                f"got {self.webhook_max_review_bytes!r}"
            )

    @property
    def all_excluded_namespaces(self) -> frozenset[str]:
        return ALWAYS_EXCLUDED | {self.namespace} | self.excluded_namespaces


def load_defaults(path: Path | None, image: str | None = None) -> InjectionConfig:
    """The operator's defaults: a ProfilisConfig spec in YAML (``path``), ``image`` on top."""
    spec: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise OptionsError(f"cannot read the defaults file {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise OptionsError(f"the defaults file {path} must hold a ProfilisConfig spec (a map)")
        # Accept a whole ProfilisConfig too: its spec is what counts.
        spec = loaded.get("spec", loaded) if loaded.get("kind") == "ProfilisConfig" else loaded
    if image:
        spec = {**spec, "sidecar": {**spec.get("sidecar", {}), "image": image}}
    try:
        return resolve({}, spec)
    except InvalidConfigError as exc:
        raise OptionsError(f"operator defaults: {exc}") from None
