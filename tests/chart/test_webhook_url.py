"""webhook.url: the API server calls an operator that runs outside the cluster, by URL.

Developers run the operator locally, and the project's control-plane tests run it as a process
next to a real kube-apiserver on 127.0.0.1: a ``service:`` reference would make the API server
dial a ClusterIP nothing serves. The certificate is checked as the API server checks it: a real
TLS handshake trusting only the caBundle, for the URL's host (an IP address matches IP SANs
only). Upgrades are rendered offline with ``lookup`` answered from a values key.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import socket
import ssl
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509

from profilis_operator import certs
from tests.chart.conftest import KUBE_VERSIONS, Render
from tests.chart.custom_schemas import SCHEMAS
from tests.chart.helm import CHART, NAMESPACE, RELEASE, Helm, Manifest, scenarios
from tests.chart.manifests import of_kind, one
from tests.chart.test_operator_interface import operator_options
from tests.chart.test_webhook import operator_args, serve_tls_once, webhook_of

SCENARIOS = scenarios()
LOCAL_URL = "https://127.0.0.1:9443/mutate-pods"
HOSTS_ANNOTATION = "profilis.io/webhook-hosts"


def render_with(helm: Helm, *assignments: str, scenario: str | None = None) -> list[Manifest]:
    files = [SCENARIOS[scenario]] if scenario else []
    return helm.template(files, assignments, kube_version=KUBE_VERSIONS[-1])  # type: ignore[arg-type]


def certificate_of(secret: Manifest) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def subject_alternative_names(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return extension.value


def handshake(secret: Manifest, ca_bundle: str, host: str, tmp_path: Path) -> None:
    """Serve the Secret's certificate on 127.0.0.1; connect as the API server would to ``host``."""
    for key in ("tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    port, thread = serve_tls_once(tmp_path / "tls.crt", tmp_path / "tls.key")
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        assert conn.recv(2) == b"ok"
    thread.join(10)


def test_the_url_replaces_the_service(render: Render) -> None:
    manifests = render(SCENARIOS["external-operator"], KUBE_VERSIONS[-1])
    client = webhook_of(manifests)["clientConfig"]
    assert client == {"url": LOCAL_URL, "caBundle": one(manifests, "Secret")["data"]["ca.crt"]}


def test_no_operator_pod_runs_but_what_a_local_operator_needs_is_there(render: Render) -> None:
    manifests = render(SCENARIOS["external-operator"], KUBE_VERSIONS[-1])
    assert one(manifests, "Deployment")["spec"]["replicas"] == 0
    # operator.podDisruptionBudget.enabled is true, but a PDB of no pod blocks nothing useful.
    assert not of_kind(manifests, "PodDisruptionBudget")
    assert not of_kind(manifests, "Pod"), "the helm test pod would find no operator to test"
    # Its identity and permissions (for `kubectl create token`), its defaults and its certificate.
    account = one(manifests, "ServiceAccount")["metadata"]["name"]
    assert one(manifests, "ClusterRoleBinding")["subjects"][0]["name"] == account
    assert [
        m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-defaults")
    ]
    assert one(manifests, "Secret")["metadata"]["name"] == f"{RELEASE}-webhook-tls"


@pytest.mark.parametrize(
    ("url", "kind", "name"),
    [
        (LOCAL_URL, x509.IPAddress, ipaddress.ip_address("127.0.0.1")),
        ("https://[::1]:9443/mutate-pods", x509.IPAddress, ipaddress.ip_address("::1")),
        ("https://operator.dev.example.com/mutate-pods", x509.DNSName, "operator.dev.example.com"),
    ],
)
def test_helm_mode_certificate_names_the_url_host(
    helm: Helm, url: str, kind: type[x509.GeneralName], name: Any
) -> None:
    secret = one(render_with(helm, f"webhook.url={url}"), "Secret")
    names = subject_alternative_names(certificate_of(secret))
    assert name in names.get_values_for_type(kind)  # type: ignore[arg-type]
    if kind is x509.IPAddress:
        assert str(name) not in names.get_values_for_type(x509.DNSName), "an IP as a DNS SAN"
    # The Service's names stay: the same certificate serves an in-cluster operator too.
    assert f"{RELEASE}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert secret["metadata"]["annotations"][HOSTS_ANNOTATION].split(",")[-1] == str(name)


@pytest.mark.parametrize("host", ["127.0.0.1", "operator.dev.example.com"])
def test_the_api_server_trusts_the_operator_at_the_url(
    helm: Helm, host: str, tmp_path: Path
) -> None:
    manifests = render_with(helm, f"webhook.url=https://{host}:9443/mutate-pods")
    ca_bundle = webhook_of(manifests)["clientConfig"]["caBundle"]
    handshake(one(manifests, "Secret"), ca_bundle, host, tmp_path)


def test_the_certificate_for_127_0_0_1_fails_for_another_address(
    render: Render, tmp_path: Path
) -> None:
    # The handshake above is a real check: an IP SAN matches its address only.
    manifests = render(SCENARIOS["external-operator"], KUBE_VERSIONS[-1])
    ca_bundle = webhook_of(manifests)["clientConfig"]["caBundle"]
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(one(manifests, "Secret"), ca_bundle, "127.0.0.2", tmp_path)


def test_cert_manager_mode_names_the_url_host(helm: Helm) -> None:
    manifests = render_with(helm, f"webhook.url={LOCAL_URL}", scenario="cert-manager")
    certificate = one(manifests, "Certificate")
    jsonschema.Draft202012Validator(SCHEMAS["Certificate"]).validate(certificate)
    assert certificate["spec"]["ipAddresses"] == ["127.0.0.1"]
    assert "127.0.0.1" not in certificate["spec"]["dnsNames"]
    assert webhook_of(manifests)["clientConfig"] == {"url": LOCAL_URL}  # cainjector adds the CA
    dns = render_with(helm, "webhook.url=https://op.example.com/x", scenario="cert-manager")
    assert "op.example.com" in one(dns, "Certificate")["spec"]["dnsNames"]
    assert "ipAddresses" not in one(dns, "Certificate")["spec"]


def test_self_signed_mode_gives_the_operator_the_url_host(helm: Helm, tmp_path: Path) -> None:
    manifests = render_with(helm, f"webhook.url={LOCAL_URL}", scenario="self-signed")
    assert "--extra-hostname=127.0.0.1" in operator_args(manifests)
    options = operator_options(manifests, tmp_path)
    # What the operator then generates: an IP SAN for 127.0.0.1 beside the Service's names.
    hostnames = certs.service_hostnames(options.webhook_service, options.namespace)
    bundle = certs.generate([*hostnames, *options.extra_hostnames])
    names = subject_alternative_names(x509.load_pem_x509_certificate(bundle.cert_pem))
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_without_a_url_the_operator_gets_no_extra_hostname(render: Render) -> None:
    args = operator_args(render(SCENARIOS["self-signed"], KUBE_VERSIONS[-1]))
    assert not [arg for arg in args if arg.startswith("--extra-hostname")]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9443/mutate-pods",
        "127.0.0.1:9443/mutate-pods",
        "https://admin@127.0.0.1:9443/mutate-pods",
        "https://127.0.0.1:9443/mutate-pods?debug=1",
        "https://127.0.0.1:9443/mutate-pods#x",
        "https://:9443/mutate-pods",
    ],
)
def test_the_schema_refuses_urls_the_api_server_refuses(helm: Helm, url: str) -> None:
    result = helm.run(*helm.template_args(set_values=[f"webhook.url={url}"]))
    assert result.returncode != 0, f"helm accepted {url}"
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert "webhook.url" in result.stderr or "/webhook/url" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def upgrade_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with `lookup` of the webhook Secret answered from the value existingSecret:
    `helm template` has no cluster to ask, and this is how an upgrade finds the Secret."""
    chart = tmp_path_factory.mktemp("upgrade") / "profilis"
    shutil.copytree(CHART, chart, symlinks=False)
    template = chart / "templates" / "webhook.yaml"
    call = 'lookup "v1" "Secret" .Release.Namespace $secretName'
    assert call in template.read_text()
    template.write_text(
        template.read_text().replace(call, "(.Values.existingSecret | default dict)")
    )
    (chart / "values.schema.json").unlink()  # existingSecret is no value of the real chart
    return chart


def upgrade(
    helm: Helm, chart: Path, tmp_path: Path, existing: Manifest | None, *sets: str
) -> Manifest:
    """The Secret an install (existing None) or an upgrade over ``existing`` renders."""
    values = tmp_path / "existing.yaml"
    values.write_text(yaml.safe_dump({"existingSecret": existing} if existing else {}))
    args: list[str | Path] = ["template", RELEASE, chart, "--namespace", NAMESPACE]
    args += ["--values", values, "--show-only", "templates/webhook.yaml"]
    for assignment in sets:
        args += ["--set", assignment]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    return one(list(yaml.safe_load_all(result.stdout)), "Secret")


def test_an_upgrade_keeps_the_certificate_while_its_hosts_stay(
    helm: Helm, upgrade_chart: Path, tmp_path: Path
) -> None:
    installed = upgrade(helm, upgrade_chart, tmp_path, None, f"webhook.url={LOCAL_URL}")
    again = upgrade(helm, upgrade_chart, tmp_path, installed, f"webhook.url={LOCAL_URL}")
    assert again["data"] == installed["data"]


def test_an_upgrade_that_sets_the_url_reissues_the_certificate(
    helm: Helm, upgrade_chart: Path, tmp_path: Path
) -> None:
    installed = upgrade(helm, upgrade_chart, tmp_path, None)
    upgraded = upgrade(helm, upgrade_chart, tmp_path, installed, f"webhook.url={LOCAL_URL}")
    assert upgraded["data"]["tls.crt"] != installed["data"]["tls.crt"]
    names = subject_alternative_names(certificate_of(upgraded))
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_a_secret_of_an_older_chart_is_kept_for_the_same_service(
    helm: Helm, upgrade_chart: Path, tmp_path: Path
) -> None:
    # Older charts wrote no hosts annotation: their certificate names the Service only.
    older = upgrade(helm, upgrade_chart, tmp_path, None)
    del older["metadata"]["annotations"]
    assert upgrade(helm, upgrade_chart, tmp_path, older)["data"] == older["data"]
    upgraded = upgrade(helm, upgrade_chart, tmp_path, older, f"webhook.url={LOCAL_URL}")
    assert upgraded["data"]["tls.crt"] != older["data"]["tls.crt"]
