"""``profilis-operator``: flags and environment to ``OperatorOptions``, then kopf runs it.

Runs cluster-wide (pods, namespaces and workloads of every namespace), logged in with the
in-cluster service account or a kubeconfig (``KUBECONFIG``). Environment variables, set by
the Helm chart, provide what flags do not: ``POD_NAMESPACE`` (the operator's namespace),
``PROFILIS_OPERATOR_IMAGE``, ``PROFILIS_OPERATOR_DEFAULTS`` (a YAML ProfilisConfig spec),
``PROFILIS_OPERATOR_EXCLUDED_NAMESPACES`` (comma list), ``PROFILIS_OPERATOR_NATIVE_SIDECARS``.
Before kopf starts, ``main`` checks what it needs in one line each: the ``operator`` extra's
modules (imported here, not at the top) and credentials for a cluster (the login handler's
own search), so neither ends in a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from profilis import __version__
from profilis._commands import CommandParser, requires_extra

if TYPE_CHECKING:
    from profilis_operator.options import NativeSidecars, OperatorOptions

__all__ = ["build_parser", "main", "options_from_args"]

#: Where kopf's service-account login looks first (``kopf.login_with_service_account``).
_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="profilis-operator",
        description="Injects the Profilis agent and sidecar into annotated workloads' pods.",
        epilog="Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (no cluster "
        "credentials: neither an in-cluster service account nor a kubeconfig), 2 for a bad "
        "flag or variable, or a missing dependency (the operator extra).",
    )
    add = parser.add_argument
    add("--version", action="version", version=f"%(prog)s {__version__}")
    add("--webhook-host", default="0.0.0.0", help="interface of the webhook (default 0.0.0.0)")
    add("--webhook-port", type=int, default=9443, help="HTTPS port of /mutate-pods (9443)")
    add("--tls-cert-file", type=Path, help="serving certificate (PEM), reloaded when it changes")
    add("--tls-key-file", type=Path, help="its private key (PEM)")
    add(
        "--cert-reload-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often the certificate files are checked for a new pair (10)",
    )
    add(
        "--self-signed",
        action="store_true",
        help="generate a CA and certificate; keep the webhook configuration's caBundle set",
    )
    add(
        "--cert-dir",
        type=Path,
        default=Path("/tmp/profilis-webhook-certs"),
        help="with --self-signed: where the CA, certificate and key (0600) are written",
    )
    add("--webhook-config-name", default="profilis", help="MutatingWebhookConfiguration name")
    add(
        "--ca-bundle-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --self-signed: how often the caBundle is checked and restored (30)",
    )
    add("--webhook-service", default="profilis-webhook", help="Service name, for the cert's SANs")
    add("--extra-hostname", action="append", default=[], help="more SANs, repeatable")
    add("--health-host", default="0.0.0.0", help="interface of /metrics and the probes")
    add("--health-port", type=int, default=8080, help="/metrics, /healthz, /readyz (8080)")
    add("--namespace", help="the operator's namespace (env POD_NAMESPACE)")
    add(
        "--exclude-namespace",
        action="append",
        default=[],
        help="never inject here, besides kube-system and the operator's own; repeatable "
        "(env PROFILIS_OPERATOR_EXCLUDED_NAMESPACES, comma list)",
    )
    add(
        "--native-sidecars",
        choices=["auto", "always", "never"],
        help="sidecar as an init container with restartPolicy Always: auto asks the API "
        "server for 1.29+ (env PROFILIS_OPERATOR_NATIVE_SIDECARS; default auto)",
    )
    add(
        "--defaults",
        type=Path,
        help="YAML ProfilisConfig spec: what pods without a ProfilisConfig get "
        "(env PROFILIS_OPERATOR_DEFAULTS)",
    )
    add(
        "--image",
        help="the Profilis image (agent and sidecar), over the defaults' "
        "(env PROFILIS_OPERATOR_IMAGE)",
    )
    add(
        "--status-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often each ProfilisConfig's status (its workloads) is refreshed (10)",
    )
    add(
        "--webhook-max-connections",
        type=int,
        default=128,
        metavar="N",
        help="connections the webhook holds open, TLS handshakes included; more are closed "
        "at once (128)",
    )
    add(
        "--webhook-handshake-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time a webhook client has to finish the TLS handshake (5)",
    )
    add(
        "--webhook-idle-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time a webhook connection may stay open without a whole request in (30)",
    )
    add(
        "--webhook-max-review-bytes",
        type=int,
        default=2 << 20,
        metavar="BYTES",
        help="largest AdmissionReview processed; a larger one is admitted unchanged (2097152)",
    )
    add("--peering", help="kopf peering name for several replicas (default: standalone)")
    add(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    return parser


def options_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> OperatorOptions:
    """Flags first, then the environment; ``OptionsError`` names what is wrong."""
    from profilis_operator.options import OperatorOptions, load_defaults  # pyyaml

    excluded = [*args.exclude_namespace]
    excluded += environ.get("PROFILIS_OPERATOR_EXCLUDED_NAMESPACES", "").split(",")
    defaults_path = args.defaults or environ.get("PROFILIS_OPERATOR_DEFAULTS") or None
    return OperatorOptions(
        namespace=args.namespace or environ.get("POD_NAMESPACE") or "profilis-system",
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
        cert_reload_interval_s=args.cert_reload_interval,
        self_signed=args.self_signed,
        cert_dir=args.cert_dir,
        webhook_config_name=args.webhook_config_name,
        ca_bundle_interval_s=args.ca_bundle_interval,
        webhook_service=args.webhook_service,
        extra_hostnames=tuple(args.extra_hostname),
        health_host=args.health_host,
        health_port=args.health_port,
        excluded_namespaces=frozenset(n.strip() for n in excluded if n.strip()),
        native_sidecars=_native_sidecars(
            args.native_sidecars or environ.get("PROFILIS_OPERATOR_NATIVE_SIDECARS") or "auto"
        ),
        defaults=load_defaults(
            Path(defaults_path) if defaults_path else None,
            args.image or environ.get("PROFILIS_OPERATOR_IMAGE"),
        ),
        status_interval_s=args.status_interval,
        webhook_max_connections=args.webhook_max_connections,
        webhook_handshake_timeout_s=args.webhook_handshake_timeout,
        webhook_idle_timeout_s=args.webhook_idle_timeout,
        webhook_max_review_bytes=args.webhook_max_review_bytes,
    )


def _native_sidecars(text: str) -> NativeSidecars:
    from profilis_operator.options import OptionsError

    if text not in ("auto", "always", "never"):
        raise OptionsError(
            f"PROFILIS_OPERATOR_NATIVE_SIDECARS must be auto, always or never, got {text!r}"
        )
    return text  # type: ignore[return-value]  # checked just above


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (kopf stops its tasks, then ours, cleanly); 1 without a
    cluster to log in to, 2 for a bad flag or variable or a missing extra (one line each)."""
    with requires_extra("profilis-operator", "operator"):
        import kopf

        from profilis_operator.handlers import register
        from profilis_operator.kubeapi import connection_info
        from profilis_operator.options import OptionsError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args, os.environ if environ is None else environ)
    except OptionsError as exc:
        parser.error(str(exc))  # exits 2, naming the flag or variable
    # kopf would retry a failed login and end in a traceback suggesting a client library;
    # the same search as the login handler, done once here, gives one line instead.
    try:
        found = connection_info(kopf.OperatorSettings()) is not None
    except Exception as exc:  # a kubeconfig that cannot be read or used, whatever the error
        print(f"profilis-operator: {_unusable_kubeconfig(exc)}", file=sys.stderr)
        return 1
    if not found:
        print(f"profilis-operator: {_NO_CLUSTER}", file=sys.stderr)
        return 1
    kopf.configure(verbose=args.log_level == "DEBUG", quiet=args.log_level in ("WARNING", "ERROR"))
    logging.getLogger("profilis").setLevel(args.log_level)
    registry = kopf.OperatorRegistry()
    register(registry, options)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=args.peering is None,
            peering_name=args.peering,
        )
    )
    return 0


#: What ``main`` says when neither login kopf's handler tries is possible.
_NO_CLUSTER = (
    "no Kubernetes cluster to log in to: tried the in-cluster service account "
    f"({_SERVICE_ACCOUNT_TOKEN}: absent) and a kubeconfig (KUBECONFIG unset, ~/.kube/config "
    "absent); run it in a pod with a service account, or set KUBECONFIG to a kubeconfig file"
)


def _unusable_kubeconfig(exc: Exception) -> str:
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    if isinstance(exc, KeyError):  # the current context names a cluster or user not defined
        reason = f"it names {exc} but does not define it"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = f"{exc.strerror}: {exc.filename}"
    elif getattr(exc, "problem_mark", None) is not None:  # yaml.MarkedYAMLError
        reason = f"not YAML: {exc.problem} at line {exc.problem_mark.line + 1}"  # type: ignore[attr-defined]
    else:
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
    return (
        f"cannot use the kubeconfig {where} ({reason}); set KUBECONFIG to a valid kubeconfig "
        "file, or run it in a pod with a service account"
    )


if __name__ == "__main__":
    sys.exit(main())
