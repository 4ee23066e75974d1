"""The MutatingWebhookConfiguration and its certificate, in each of the three modes.

Selectors are evaluated the way the API server evaluates them, on sample namespaces and pods;
the Helm-generated certificate is used for a real TLS handshake, verified with the caBundle
and the Service's DNS name exactly as the API server verifies it.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.helm import NAMESPACE, Manifest, scenarios
from tests.chart.manifests import of_kind, one

SCENARIOS = scenarios()
#: Scenarios whose webhook calls the chart's Service (test_webhook_url.py has the others).
SERVICE_SCENARIOS = [
    name
    for name, values in SCENARIOS.items()
    if not (values and (yaml.safe_load(values.read_text()).get("webhook") or {}).get("url"))
]
OPERATOR_PORT = 9443


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (matchLabels AND every matchExpression)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def namespace_labels(name: str, **labels: str) -> dict[str, str]:
    # The API server sets kubernetes.io/metadata.name on every namespace (1.21+).
    return {"kubernetes.io/metadata.name": name, **labels}


def webhook_of(manifests: list[Manifest]) -> dict[str, Any]:
    config = one(manifests, "MutatingWebhookConfiguration")
    (webhook,) = config["webhooks"]
    return webhook  # type: ignore[no-any-return]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fails_open_quickly_and_only_for_pod_creation(render: Render, scenario: str) -> None:
    webhook = webhook_of(render(SCENARIOS[scenario], KUBE_VERSIONS[-1]))
    assert webhook["failurePolicy"] == "Ignore"
    assert 1 <= webhook["timeoutSeconds"] <= 5
    # Its one side effect, an Event per admission, is skipped for dry-run requests.
    assert webhook["sideEffects"] == "NoneOnDryRun"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]


@pytest.mark.parametrize("scenario", SERVICE_SCENARIOS)
def test_calls_the_operator_through_its_service(render: Render, scenario: str) -> None:
    manifests = render(SCENARIOS[scenario], KUBE_VERSIONS[-1])
    client = webhook_of(manifests)["clientConfig"]["service"]
    service = one(manifests, "Service")
    assert client == {
        "name": service["metadata"]["name"],
        "namespace": NAMESPACE,
        "path": "/mutate-pods",
        "port": 443,
    }
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == 443]
    deployment = one(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert target["containerPort"] == OPERATOR_PORT
    assert selector_matches(
        {"matchLabels": service["spec"]["selector"]},
        deployment["spec"]["template"]["metadata"]["labels"],
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_skips_kube_system_the_release_namespace_and_opted_out_namespaces(
    render: Render, scenario: str
) -> None:
    selector = webhook_of(render(SCENARIOS[scenario], KUBE_VERSIONS[-1]))["namespaceSelector"]
    assert not selector_matches(selector, namespace_labels(NAMESPACE))
    assert not selector_matches(selector, namespace_labels("kube-system"))
    assert not selector_matches(
        selector, namespace_labels("shop", **{"profilis.io/inject": "disabled"})
    )
    # Everything else reaches the webhook, which decides on annotations and labels itself.
    assert selector_matches(selector, namespace_labels("shop"))
    assert selector_matches(selector, namespace_labels("shop", **{"profilis.io/inject": "enabled"}))


def test_extra_excluded_namespaces_are_skipped_too(render: Render) -> None:
    values = SCENARIOS["high-availability"]
    selector = webhook_of(render(values, KUBE_VERSIONS[-1]))["namespaceSelector"]
    assert not selector_matches(selector, namespace_labels("ingress-nginx"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_skips_the_charts_own_pods_but_not_users_pods(render: Render, scenario: str) -> None:
    manifests = render(SCENARIOS[scenario], KUBE_VERSIONS[-1])
    selector = webhook_of(manifests)["objectSelector"]
    operator_pod = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not selector_matches(selector, operator_pod)
    for test_pod in of_kind(manifests, "Pod"):
        assert not selector_matches(selector, test_pod["metadata"]["labels"])
    assert selector_matches(selector, {"app": "shop", "app.kubernetes.io/name": "profilis"})


def operator_args(manifests: list[Manifest]) -> list[str]:
    deployment = one(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


def mounted_secret(manifests: list[Manifest]) -> tuple[str, str] | None:
    """(Secret name, mount path) of the operator's certificate volume, if any."""
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for volume in pod["volumes"]:
        if "secret" in volume:
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            return volume["secret"]["secretName"], mount["mountPath"]
    return None


def serve_tls_once(cert_file: Path, key_file: Path) -> tuple[int, threading.Thread]:
    """A one-connection TLS server on 127.0.0.1 with the given certificate."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def accept() -> None:
        # A client that rejects the certificate aborts the handshake: that is its answer.
        with (
            listener,
            listener.accept()[0] as raw,
            contextlib.suppress(ssl.SSLError, ConnectionError),
            server_context.wrap_socket(raw, server_side=True) as conn,
        ):
            conn.sendall(b"ok")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return port, thread


def test_helm_mode_certificate_is_trusted_by_the_ca_bundle(render: Render, tmp_path: Path) -> None:
    manifests = render(None, KUBE_VERSIONS[-1])
    secret = one(manifests, "Secret")
    webhook = webhook_of(manifests)
    assert secret["type"] == "kubernetes.io/tls"
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert mounted_secret(manifests) is not None
    secret_name, mount_path = mounted_secret(manifests)  # type: ignore[misc]
    assert secret_name == secret["metadata"]["name"]
    args = operator_args(manifests)
    assert f"--tls-cert-file={mount_path}/tls.crt" in args
    assert f"--tls-key-file={mount_path}/tls.key" in args

    files = {}
    for key in ("ca.crt", "tls.crt", "tls.key"):
        files[key] = tmp_path / key
        files[key].write_bytes(base64.b64decode(secret["data"][key]))
    port, thread = serve_tls_once(files["tls.crt"], files["tls.key"])
    # The API server's view: trust only caBundle, expect the Service's DNS name.
    ca_bundle = base64.b64decode(webhook["clientConfig"]["caBundle"]).decode()
    client_context = ssl.create_default_context(cadata=ca_bundle)
    service = webhook["clientConfig"]["service"]
    hostname = f"{service['name']}.{service['namespace']}.svc"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client_context.wrap_socket(raw, server_hostname=hostname) as conn,
    ):
        assert conn.recv(2) == b"ok"
    thread.join(10)


def test_helm_mode_certificate_does_not_verify_for_another_name(
    render: Render, tmp_path: Path
) -> None:
    # The handshake above is a real check: the same certificate fails for a wrong host name.
    secret = one(render(None, KUBE_VERSIONS[-1]), "Secret")
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    port, thread = serve_tls_once(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client_context.wrap_socket(raw, server_hostname="evil.example.com")
    thread.join(10)


@pytest.mark.parametrize("scenario", ["cert-manager", "cert-manager-cluster-issuer"])
def test_cert_manager_mode_issues_the_mounted_secret(render: Render, scenario: str) -> None:
    manifests = render(SCENARIOS[scenario], KUBE_VERSIONS[-1])
    certificate = one(manifests, "Certificate")
    config = one(manifests, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert "caBundle" not in webhook_of(manifests)["clientConfig"]
    assert not of_kind(manifests, "Secret"), "cert-manager writes the Secret, not the chart"
    secret = mounted_secret(manifests)
    assert secret is not None and secret[0] == certificate["spec"]["secretName"]
    service = webhook_of(manifests)["clientConfig"]["service"]
    assert f"{service['name']}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    issuers = of_kind(manifests, "Issuer")
    if scenario == "cert-manager":
        (issuer,) = issuers
        assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    else:
        assert not issuers
        assert certificate["spec"]["issuerRef"] == {
            "name": "internal-ca",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        }


def test_self_signed_mode_leaves_the_certificate_to_the_operator(render: Render) -> None:
    manifests = render(SCENARIOS["self-signed"], KUBE_VERSIONS[-1])
    assert not of_kind(manifests, "Secret")
    assert not of_kind(manifests, "Certificate")
    assert "caBundle" not in webhook_of(manifests)["clientConfig"]
    assert mounted_secret(manifests) is None
    args = operator_args(manifests)
    assert "--self-signed" in args
    assert not [a for a in args if a.startswith("--tls-")]
