"""docs/security.md says exactly what an injection adds to a pod: each list of its "Exactly
what an injection adds" section equals what ``inject`` (and a skip) really adds, both ways."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from profilis_operator.admission import Admission, AdmissionState
from profilis_operator.effective_config import resolve
from profilis_operator.injection import ClusterCapabilities, inject
from tests.operator import pods

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"
#: Configured so that the optional variables appear too.
CONFIG = resolve(
    {
        "sampling": {"excludedRoutes": ["/healthz"]},
        "instrumentations": {"disabled": ["sqlalchemy"]},
        "dashboard": {"tokenSecretRef": {"name": "profilis-ui", "key": "token"}},
    }
)


def documented() -> dict[str, set[str]]:
    """Bullet label -> the backticked names it lists."""
    section = SECURITY.read_text().split("## Exactly what an injection adds", 1)[1]
    section = section.split("\n## ", 1)[0]
    bullets = re.findall(r"^- \*\*(.+?)\*\*:(.*?)(?=^- |^\s*$)", section, re.M | re.S)
    return {label: set(re.findall(r"`([^`]+)`", text)) for label, text in bullets}


def env_names(container: dict[str, Any]) -> set[str]:
    return {item["name"] for item in container.get("env") or []}


def added(original: dict[str, Any], native: bool = True) -> dict[str, set[str]]:
    injection = inject(original, CONFIG, ClusterCapabilities(native_sidecars=native))
    assert injection.injected, injection.message
    pod = jsonpatch.apply_patch(copy.deepcopy(original), injection.patch)
    spec, before = pod["spec"], original["spec"]
    apps = [c for c in spec["containers"] if c["name"] in injection.containers]
    old = {c["name"]: c for c in before["containers"]}
    every = [*spec.get("initContainers", []), *spec["containers"]]
    names_before = {c["name"] for c in [*before.get("initContainers", []), *before["containers"]]}
    ours = [c for c in every if c["name"] not in names_before]
    sidecar = next(c for c in ours if c["name"] == "profilis-sidecar")
    return {
        "Containers": {c["name"] for c in ours},
        "Volumes": {v["name"] for v in spec["volumes"]}
        - {v["name"] for v in before.get("volumes") or []},
        "Mounts in instrumented containers": {
            m["mountPath"]
            for c in apps
            for m in c["volumeMounts"]
            if m not in (old[c["name"]].get("volumeMounts") or [])
        },
        "Env of instrumented containers": {
            name for c in apps for name in env_names(c) - env_names(old[c["name"]])
        }
        | {"PYTHONPATH"},
        "Env of the sidecar": env_names(sidecar),
        "Ports": {p["name"] for p in sidecar["ports"]},
        "Annotations": set(pod["metadata"]["annotations"])
        - set(original["metadata"].get("annotations") or {}),
    }


def skipped_annotations() -> set[str]:
    admission = Admission(
        AdmissionState(CONFIG, ClusterCapabilities(True), frozenset(), ready=True)
    )
    windows = pods.pod(os={"name": "windows"})
    outcome = admission.review(json.dumps(pods.review(windows)))
    operations = json.loads(base64.b64decode(outcome.response["response"]["patch"]))
    pod = jsonpatch.apply_patch(copy.deepcopy(windows), operations)
    return set(pod["metadata"]["annotations"]) - set(windows["metadata"]["annotations"])


def pod_variants() -> list[dict[str, Any]]:
    plain = pods.pod()
    with_env_from = pods.pod()
    with_env_from["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "x"}}]
    return [plain, with_env_from, pods.python_path_from_secret()]


def test_every_documented_list_is_exactly_what_injections_add() -> None:
    seen: dict[str, set[str]] = {}
    for variant in pod_variants():
        for native in (True, False):
            for label, names in added(variant, native).items():
                seen.setdefault(label, set()).update(names)
    seen["Annotations"] |= skipped_annotations()
    assert documented() == seen


@pytest.mark.parametrize("label", ["Containers", "Env of instrumented containers"])
def test_the_parser_reads_the_lists(label: str) -> None:
    # Guards the test above against a parser that reads nothing (and so matches nothing).
    assert len(documented()[label]) >= 2
