"""certificates.mode=selfSigned on the real API server: the operator (``--self-signed``, the
chart's arguments and RBAC) generates its certificate, patches the caBundle into the real
MutatingWebhookConfiguration, the API server then trusts it for every pod, and a
`helm upgrade` that resets the caBundle is repaired."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.k8s.kube import HelmCli, Kube, deployment, wait_for
from tests.k8s.operator import LocalOperator, operator_release

INJECT = {"profilis.io/inject": "true"}
#: The chart names the configuration <fullname>.profilis.io.
WEBHOOK_CONFIG = "selfsigned-profilis.profilis.io"


@pytest.fixture(scope="module")
def self_signed(
    kube: Kube,
    helm: HelmCli,
    third_party_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalOperator]:
    workdir = tmp_path_factory.mktemp("self-signed")
    with operator_release(
        kube,
        helm,
        "selfsigned",
        "profilis-selfsigned",
        workdir,
        "certificates.mode=selfSigned",
        # How often the operator checks the caBundle: short, for the repair below.
        "operator.extraArgs={--status-interval=1,--ca-bundle-interval=1}",
    ) as local:
        yield local


def ca_bundle(kube: Kube) -> bytes:
    (webhook,) = kube.admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG).webhooks
    return base64.b64decode(webhook.client_config.ca_bundle or "")


def test_the_rendered_configuration_has_no_ca_bundle_of_its_own(self_signed: LocalOperator) -> None:
    rendered = self_signed.release.manifest("MutatingWebhookConfiguration")
    (webhook,) = rendered["webhooks"]
    assert "caBundle" not in webhook["clientConfig"]
    args, _ = self_signed.command()
    assert "--self-signed" in args and "--extra-hostname=127.0.0.1" in args


def test_the_operator_patches_its_ca_into_the_real_configuration(
    kube: Kube, self_signed: LocalOperator, namespace: str
) -> None:
    ca_pem = (self_signed.workdir / "certs" / "ca.pem").read_bytes()
    wait_for(lambda: ca_bundle(kube), lambda bundle: bundle == ca_pem, "the caBundle patched")
    # The API server now trusts the webhook: pods of an annotated Deployment are injected.
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=INJECT))
    kube.running_pods(namespace, "app=shop", 1, injected=True)


def test_an_upgrade_that_resets_the_ca_bundle_is_repaired(
    kube: Kube, self_signed: LocalOperator, namespace: str
) -> None:
    ca_pem = (self_signed.workdir / "certs" / "ca.pem").read_bytes()
    wait_for(lambda: ca_bundle(kube), lambda bundle: bundle == ca_pem, "the caBundle patched")
    # --force replaces each object with the rendered one: the caBundle is gone.
    self_signed.release.upgrade("--force", "--set", "webhook.timeoutSeconds=4")
    (webhook,) = kube.admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG).webhooks
    assert webhook.timeout_seconds == 4
    wait_for(lambda: ca_bundle(kube), lambda bundle: bundle == ca_pem, "the caBundle restored")
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=INJECT))
    kube.running_pods(namespace, "app=shop", 1, injected=True)
