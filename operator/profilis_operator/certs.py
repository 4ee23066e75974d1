"""``--self-signed``: a CA and a serving certificate made with ``cryptography``, and the
MutatingWebhookConfiguration's ``caBundle`` kept pointing at that CA.

For clusters without cert-manager. Each start makes a new CA, so run one replica in this
mode (or mount a shared Secret and use ``--tls-cert-file``/``--tls-key-file`` instead).
kopf's own generator (certbuilder/oscrypto) does not work with OpenSSL 3, hence this module.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from profilis_operator.kubeapi import ApiError, KubeApi

__all__ = [
    "SelfSignedCertificates",
    "generate",
    "keep_ca_bundle",
    "patch_ca_bundle",
    "service_hostnames",
]

log = logging.getLogger("profilis.operator.certs")


@dataclass(frozen=True, slots=True)
class SelfSignedCertificates:
    """PEM bytes: the CA certificate (the caBundle), the serving certificate and its key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write ca.pem, tls.crt, tls.key (0600) into ``directory``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "ca.pem", directory / "tls.crt", directory / "tls.key")
        for path, data in zip(paths, (self.ca_pem, self.cert_pem, self.key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return paths


def service_hostnames(service: str, namespace: str) -> list[str]:
    """The names the API server may use for a webhook Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def generate(
    hostnames: Sequence[str], *, valid_days: int = 365, now: dt.datetime | None = None
) -> SelfSignedCertificates:
    """A fresh CA and a certificate for ``hostnames`` (DNS names or IP addresses) it signed."""
    if not hostnames:
        raise ValueError("a serving certificate needs at least one host name")
    now = now or dt.datetime.now(dt.timezone.utc)
    # Backdated a little: clocks of the API server and this node may disagree.
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=valid_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "profilis-webhook-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return SelfSignedCertificates(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


async def patch_ca_bundle(api: KubeApi, config_name: str, ca_pem: bytes) -> bool:
    """Set every webhook's ``clientConfig.caBundle`` of ``config_name``; True if it changed."""
    bundle = base64.b64encode(ca_pem).decode("ascii")
    current = await api.read_webhook_configuration(config_name)
    # A JSON patch by index (a merge patch would replace the whole list), each index checked
    # by name first: a list changed since the read fails the patch, and the keeper reads again.
    operations: list[dict[str, Any]] = []
    for index, webhook in enumerate(current.webhooks or ()):
        if webhook.client_config.ca_bundle != bundle:
            path = f"/webhooks/{index}"
            operations.append({"op": "test", "path": f"{path}/name", "value": webhook.name})
            operations.append(
                {"op": "add", "path": f"{path}/clientConfig/caBundle", "value": bundle}
            )
    if not operations:
        return False
    await api.json_patch_webhook_configuration(config_name, operations)
    return True


async def keep_ca_bundle(
    api: KubeApi, config_name: str, ca_pem: bytes, *, interval_s: float
) -> None:
    """Forever: make ``config_name`` trust ``ca_pem`` again whenever it does not (a chart
    upgrade may reset it); the configuration may also appear after the operator starts."""
    while True:
        try:
            if await patch_ca_bundle(api, config_name, ca_pem):
                log.info("caBundle of MutatingWebhookConfiguration %s set", config_name)
        except ApiError as exc:
            log.warning("cannot set the caBundle of %s yet: %s", config_name, exc)
        await asyncio.sleep(interval_s)
