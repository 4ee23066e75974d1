"""``--self-signed``: the operator makes its own CA and serving certificate, and keeps its
MutatingWebhookConfiguration's caBundle pointing at that CA, so the API server (here: a client
that trusts only the caBundle and checks the Service's DNS name) can call the webhook."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from profilis_operator import certs
from tests.operator.conftest import Cluster, admit, eventually, operator, wait_ready
from tests.operator.pods import WEBHOOK_CONFIGS, webhook_configuration

# The name the API server dials for the chart's Service in namespace profilis-system.
SERVICE_HOST = "profilis-webhook.profilis-system.svc"


def ca_bundles(configuration: dict[str, Any]) -> list[str | None]:
    return [hook["clientConfig"].get("caBundle") for hook in configuration["webhooks"]]


def test_generated_certificate_is_signed_by_its_ca_for_every_service_name() -> None:
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    names = [*certs.service_hostnames("profilis-webhook", "profilis-system"), "127.0.0.1"]
    bundle = certs.generate(names, valid_days=30, now=now)
    ca = x509.load_pem_x509_certificate(bundle.ca_pem)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)

    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == names[:-1]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # Valid a little before "now" (clock skew with the API server) and for valid_days after.
    assert cert.not_valid_before_utc == now - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == now + dt.timedelta(days=30)


def test_generated_files_keep_the_key_private(tmp_path: Path) -> None:
    bundle = certs.generate(["profilis-webhook"])
    ca_file, cert_file, key_file = bundle.write(tmp_path / "certs")
    assert (ca_file.read_bytes(), cert_file.read_bytes()) == (bundle.ca_pem, bundle.cert_pem)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The pair loads as a TLS server's certificate chain: they belong together.
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)


def test_a_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one host name"):
        certs.generate([])


@pytest.mark.asyncio
async def test_self_signed_operator_sets_and_restores_the_ca_bundle(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster.namespace("shop")
    path = f"{WEBHOOK_CONFIGS}/profilis"
    flags = ("--self-signed", "--cert-dir", str(tmp_path / "certs"))
    with operator(monkeypatch, None, *flags, "--ca-bundle-interval", "0.2") as running:
        # The chart's configuration may be applied after the operator has started.
        await cluster.create(WEBHOOK_CONFIGS, webhook_configuration())
        configuration = await eventually(lambda: cluster.get(path), lambda c: all(ca_bundles(c)))
        [bundle] = ca_bundles(configuration)
        assert bundle is not None
        ca_pem = base64.b64decode(bundle)
        assert ca_pem == (tmp_path / "certs" / "ca.pem").read_bytes()

        await wait_ready(running.health_port)
        # What the API server does: dial the Service's name, trust only the caBundle.
        answer = await admit(running.webhook_port, ca_pem, SERVICE_HOST)
        assert answer["response"]["allowed"] is True
        ops = json.loads(base64.b64decode(answer["response"]["patch"]))
        assert any(op["path"] == "/spec/initContainers" for op in ops)
        # The certificate is for the Service only.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await admit(running.webhook_port, ca_pem, "profilis-webhook.elsewhere.svc")

        # A helm upgrade re-applies the configuration without a caBundle: it comes back.
        await cluster.merge(path, {"webhooks": webhook_configuration()["webhooks"]})
        assert ca_bundles(await cluster.get(path)) == [None]
        restored = await eventually(lambda: cluster.get(path), lambda c: all(ca_bundles(c)))
        assert ca_bundles(restored) == [bundle]
