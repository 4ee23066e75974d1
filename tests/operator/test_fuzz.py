"""Fuzzed AdmissionReviews: whatever arrives, the answer is a valid AdmissionReview with
``allowed: true`` (and a patch only for a pod that asked for one), never an error.

10,000 go straight to ``Admission.review`` (the function the server calls); a few hundred
go over real HTTPS to the running server, where nothing may be a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from profilis_operator.admission import ADMISSION_SKIP_REASONS, RESULTS, Admission, AdmissionState
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.health import OperatorMetrics
from profilis_operator.injection import SKIP_REASONS, ClusterCapabilities
from profilis_operator.webhook import CertificateFiles, WebhookServer
from tests.operator import pods
from tests.operator.conftest import Certificates, https_client
from tests.support.processes import free_port

json_scalars = st.sampled_from([None, True, False, 0, -1, 1.5, "", "x", "/", "true"])
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=3,
)
names = st.sampled_from(["web", "worker", "", "profilis-sidecar", "x" * 70])
env_items = st.fixed_dictionaries(
    {"name": st.sampled_from(["PYTHONPATH", "PROFILIS_SAMPLE_RATE", "A"])},
    optional={"value": st.sampled_from(["", "/app", "$(X)"]), "valueFrom": json_values},
)
containers = st.fixed_dictionaries(
    {"name": names, "image": st.sampled_from(["app:1", "registry.example/shop:1.4.2"])},
    optional={
        "env": st.lists(env_items, max_size=3) | json_values,
        "volumeMounts": st.lists(
            st.fixed_dictionaries(
                {"name": names, "mountPath": st.sampled_from(["/a", "/var/run/profilis"])}
            ),
            max_size=2,
        ),
        "envFrom": st.lists(json_values, max_size=1),
    },
)
annotations = st.dictionaries(
    st.sampled_from(
        [
            "profilis.io/inject",
            "profilis.io/config",
            "profilis.io/container-names",
            "profilis.io/status",
            "other",
        ]
    ),
    st.sampled_from(["true", "false", "web,worker", "", "{}", "nope"]),
    max_size=4,
)
pod_objects = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"annotations": annotations},
            optional={
                "generateName": st.sampled_from(["web-5d8f7b9c4-", "", "-"]),
                "labels": json_values,
            },
        ),
        "spec": st.fixed_dictionaries(
            {"containers": st.lists(containers, min_size=0, max_size=3) | json_values},
            optional={
                "initContainers": st.lists(containers, max_size=2) | json_values,
                "volumes": st.lists(st.fixed_dictionaries({"name": names}), max_size=2),
                "hostNetwork": st.booleans(),
            },
        ),
    }
)
reviews = st.one_of(
    pod_objects.map(pods.review),
    st.builds(
        lambda obj, ns, op: pods.review(obj, namespace=ns, operation=op),
        pod_objects | json_values,
        st.sampled_from(["shop", "kube-system", "", "labelled"]),
        st.sampled_from(["CREATE", "UPDATE", "DELETE", 7]),
    ),
    json_values.map(
        lambda v: {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": v}
    ),
    json_values,
)
bodies = reviews.map(lambda r: json.dumps(r).encode()) | st.binary(max_size=32)


def admission() -> Admission:
    return Admission(
        AdmissionState(
            defaults=InjectionConfig(),
            capabilities=ClusterCapabilities(native_sidecars=True),
            excluded_namespaces=frozenset({"kube-system"}),
            namespaces={"labelled": ["enabled"]},
            ready=True,
        ),
        cache_size=8,
    )


def check_answer(raw: bytes, answer: dict[str, Any], result: str | None = None) -> None:
    assert answer["apiVersion"] in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["allowed"] is True
    assert isinstance(response["uid"], str)
    assert result in (*RESULTS, None)
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        # The patch applies to the pod it was made for, and only adds to it.
        pod = json.loads(raw)["request"]["object"]
        patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
        if "profilis.io/skipped" in (patched.get("metadata") or {}).get("annotations", {}):
            # A pod left alone only says why.
            reason = patched["metadata"]["annotations"].pop("profilis.io/skipped")
            assert isinstance(reason, str) and reason
            before = (json.loads(raw)["request"]["object"].get("metadata") or {}).get("annotations")
            assert patched["metadata"]["annotations"] == (before or {})
            assert {k: v for k, v in patched.items() if k != "metadata"} == {
                k: v for k, v in pod.items() if k != "metadata"
            }
        else:
            check_only_added(pod, patched)


def check_only_added(pod: dict[str, Any], patched: dict[str, Any]) -> None:
    """What a patched pod keeps: every annotation, volume and init container, in order; its
    containers, of which only those named in the status annotation changed."""
    before = pod.get("metadata", {}).get("annotations") or {}
    after = patched["metadata"]["annotations"]
    status = json.loads(after.pop("profilis.io/status"))
    assert after == before
    for key in ("volumes", "initContainers", "containers"):
        kept = pod["spec"].get(key) or []
        assert len(patched["spec"][key]) > len(kept) or key == "containers"
        for original, now in zip(kept, patched["spec"][key], strict=False):
            assert original == now or (key == "containers" and now["name"] in status["containers"])
    untouched = {k: v for k, v in pod["spec"].items() if k not in ("volumes", "initContainers")}
    assert untouched.keys() <= patched["spec"].keys()
    assert all(patched["spec"][k] == v for k, v in untouched.items() if k != "containers")


@settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # shrinking only matters on a failure: run again to get it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=bodies)
def test_ten_thousand_fuzzed_reviews_are_answered_and_allowed(raw: bytes) -> None:
    outcome = ADMISSION.review(raw)
    assert outcome.result != "error", outcome.reason  # fail-open is for bugs; there are none
    if outcome.result == "skipped":  # every reason a user can meet is a documented one
        assert outcome.reason in SKIP_REASONS_KNOWN, outcome.reason
    check_answer(raw, outcome.response, outcome.result)


ADMISSION = admission()
SKIP_REASONS_KNOWN = {
    *SKIP_REASONS,
    *ADMISSION_SKIP_REASONS,
    "not-opted-in",
    "opted-out",
    "excluded-namespace",
}


@pytest.mark.asyncio
async def test_fuzzed_reviews_over_https_are_never_a_500(certificates: Certificates) -> None:
    port = free_port()
    server = WebhookServer(
        admission(),
        CertificateFiles(certificates.cert_file, certificates.key_file),
        OperatorMetrics(),
        host="127.0.0.1",
        port=port,
    )
    samples: list[bytes] = []

    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(raw=bodies)
    def collect(raw: bytes) -> None:
        samples.append(raw)

    collect()
    await server.start()
    try:
        async with https_client(certificates) as session:

            async def one(raw: bytes) -> None:
                async with session.post(
                    f"https://127.0.0.1:{port}/mutate-pods",
                    data=raw,
                    headers={"Content-Type": "application/json"},
                ) as response:
                    assert response.status == 200
                    check_answer(raw, await response.json())

            for start in range(0, len(samples), 20):
                await asyncio.gather(*(one(raw) for raw in samples[start : start + 20]))
    finally:
        await server.stop()
    assert len(samples) >= 250
