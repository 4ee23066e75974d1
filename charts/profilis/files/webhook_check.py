"""`helm test`: the operator's webhook answers an AdmissionReview over HTTPS, and it is healthy.

Run by templates/tests/webhook-test.yaml in the chart's own image (standard library only;
tests/chart/test_webhook_check.py runs it against a local HTTPS server). The review is for a
pod that opts out (profilis.io/inject: "false"), so a correct webhook admits it with no patch:
the check does not depend on what an instrumented pod gets, and it changes nothing in the
cluster (a dry-run request: the webhook declares sideEffects: NoneOnDryRun and records no
Event for it). Exit status 0 means both checks passed.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any


def admission_review(uid: str, namespace: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "profilis-helm-test-probe",
            "namespace": namespace,
            "annotations": {"profilis.io/inject": "false"},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:helm-test"},
            "object": pod,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    if ca_file:
        # The same trust the API server has: the webhook's CA, and the Service's DNS name.
        return ssl.create_default_context(cafile=ca_file)
    # selfSigned mode: the CA exists only inside the operator; check the answer, not the chain.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def with_retries(what: str, deadline: float, call: Any) -> Any:
    """Retry connection failures until the deadline: a just-installed operator may be starting."""
    while True:
        try:
            return call()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise SystemExit(f"FAIL {what}: {exc}") from None
            print(f"waiting for {what}: {exc}", flush=True)
            time.sleep(2)


def check_webhook(url: str, ca_file: str | None, namespace: str, deadline: float) -> None:
    uid = str(uuid.uuid4())
    body = json.dumps(admission_review(uid, namespace)).encode()
    context = tls_context(ca_file)

    def post() -> dict[str, Any]:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            answer: dict[str, Any] = json.load(response)
            return answer

    answer = with_retries(f"the webhook at {url}", deadline, post)
    response = answer.get("response") or {}
    problems = []
    if answer.get("kind") != "AdmissionReview":
        problems.append(f"kind is {answer.get('kind')!r}, not AdmissionReview")
    if response.get("uid") != uid:
        problems.append(f"uid {response.get('uid')!r} does not echo the request's {uid!r}")
    if response.get("allowed") is not True:
        problems.append(f"allowed is {response.get('allowed')!r}")
    if response.get("patch"):
        problems.append("it patched a pod that opts out (profilis.io/inject: false)")
    if problems:
        raise SystemExit(f"FAIL the webhook at {url}: " + "; ".join(problems))
    verified = "certificate verified" if ca_file else "certificate not verified (selfSigned)"
    print(f"ok   the webhook at {url} admitted an opted-out pod unchanged ({verified})")


def check_health(url: str, deadline: float) -> None:
    def get() -> int:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    status = with_retries(f"the operator's health at {url}", deadline, get)
    print(f"ok   the operator's health at {url} answered {status}")


def main() -> int:
    deadline = time.monotonic() + float(os.environ.get("PROFILIS_TEST_TIMEOUT_SECONDS", "60"))
    check_webhook(
        os.environ["PROFILIS_WEBHOOK_URL"],
        os.environ.get("PROFILIS_WEBHOOK_CA_FILE") or None,
        os.environ.get("PROFILIS_TEST_NAMESPACE", "default"),
        deadline,
    )
    check_health(os.environ["PROFILIS_HEALTH_URL"], deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
