"""Fail-open for real: with the operator stopped or hung, the API server still creates the
pods (uninstrumented) within the webhook's timeout; dry-run requests are injected like any
other but leave no Event behind (the webhook declares sideEffects: NoneOnDryRun)."""

from __future__ import annotations

import time

from tests.k8s.kube import Kube, deployment, is_injected, wait_for
from tests.k8s.operator import LocalOperator

INJECT = {"profilis.io/inject": "true"}


def bare_pod(name: str) -> dict[str, object]:
    template = deployment(name, annotations=INJECT)["spec"]["template"]  # type: ignore[index]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": INJECT},
        "spec": template["spec"],
    }


def webhook_timeout_s(kube: Kube, operator: LocalOperator) -> int:
    rendered = operator.release.manifest("MutatingWebhookConfiguration")
    stored = kube.admission.read_mutating_webhook_configuration(rendered["metadata"]["name"])
    (webhook,) = stored.webhooks
    assert webhook.failure_policy == "Ignore"
    return int(webhook.timeout_seconds)


def test_with_the_operator_stopped_a_scale_up_still_creates_its_pods(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", annotations=INJECT))
    kube.running_pods(namespace, "app=shop", 1, injected=True)
    operator.stop()
    try:
        kube.apps.patch_namespaced_deployment_scale("shop", namespace, {"spec": {"replicas": 3}})
        pods = kube.running_pods(namespace, "app=shop", 3)
        assert sorted(is_injected(p) for p in pods) == [False, False, True]
    finally:
        operator.start()


def test_with_the_operator_hung_a_pod_is_created_after_the_webhook_timeout(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    timeout_s = webhook_timeout_s(kube, operator)
    with operator.paused():  # it accepts connections but answers nothing
        started = time.monotonic()
        created = kube.core.create_namespaced_pod(namespace, bare_pod("while-hung"))
        took_s = time.monotonic() - started
    assert not is_injected(created)
    # The API server gave up on the webhook after its timeout, then admitted the pod; a
    # webhook without a timeout would hold the request for the API server's own 30+ s.
    assert took_s < timeout_s + 20, f"creating the pod took {took_s:.1f} s"
    print(f"pod created {took_s:.2f} s after the request, webhook timeout {timeout_s} s")
    operator.wait_ready()


def test_a_dry_run_is_injected_but_posts_no_event(
    kube: Kube, operator: LocalOperator, namespace: str
) -> None:
    dry = kube.core.create_namespaced_pod(namespace, bare_pod("dry"), dry_run="All")
    assert is_injected(dry), "a dry run shows what the pod would be: injected"
    kube.core.create_namespaced_pod(namespace, bare_pod("real"))

    def injected_events() -> list[str]:
        return [e.involved_object.name for e in kube.events(namespace, "ProfilisInjected")]

    # Events are posted in admission order: once the real pod's is there, a dry run's
    # would be there too.
    names = wait_for(injected_events, lambda n: "real" in n, "the real pod's Event")
    assert "dry" not in names, names
