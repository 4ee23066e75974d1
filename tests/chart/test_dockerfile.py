"""The Dockerfile, read statically (no Docker engine here; tests/e2e builds it where there is).

Pinned base, non-root numeric user equal to the one the chart and the operator's injected
containers run as, the three console scripts the roles need (declared in pyproject.toml and
smoke-run by the build), and a .dockerignore that keeps what the build copies.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any

import pytest
import yaml

from profilis_operator.effective_config import InjectionConfig
from profilis_operator.injection import ClusterCapabilities, inject
from tests.chart.helm import CHART, REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

DOCKERFILE = (REPO / "Dockerfile").read_text()
DOCKERIGNORE = (REPO / ".dockerignore").read_text()
#: The roles of the one image: the chart runs the operator, injected pods the other two.
CONSOLE_SCRIPTS = ("profilis-operator", "profilis-sidecar", "profilis-agent")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            result.append((name.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def test_the_base_image_is_pinned_by_tag_and_shared_by_both_stages() -> None:
    (arg,) = [rest for name, rest in instructions() if name == "ARG" and "PYTHON_IMAGE" in rest]
    image = arg.split("=", 1)[1]
    repository, _, tag = image.partition(":")
    assert repository == "python" and re.fullmatch(r"3\.\d+-slim-\w+", tag), image
    froms = [rest for name, rest in instructions() if name == "FROM"]
    assert len(froms) == 2, "multi-stage: a build stage and a runtime stage"
    assert all(rest.startswith("${PYTHON_IMAGE}") for rest in froms)


def test_the_runtime_user_is_the_non_root_user_of_the_chart_and_injected_pods() -> None:
    users = [rest for name, rest in final_stage() if name == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0, "numeric: runAsNonRoot checks it"
    values = yaml.safe_load((CHART / "values.yaml").read_text())["securityContext"]
    assert (int(uid), int(gid)) == (values["runAsUser"], values["runAsGroup"])
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "a"}]}}
    patch = inject(pod, InjectionConfig(), ClusterCapabilities()).patch
    injected = [op["value"] for op in patch if op["path"].startswith("/spec/initContainers")]
    contexts = [c["securityContext"] for value in injected for c in _containers(value)]
    assert contexts and all(c["runAsUser"] == int(uid) for c in contexts)


def _containers(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [c for c in value if isinstance(c, dict) and "securityContext" in c]
    return [value] if isinstance(value, dict) and "securityContext" in value else []


def test_the_image_holds_every_console_script_it_is_used_as() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    missing = [name for name in CONSOLE_SCRIPTS if name not in scripts]
    assert not missing, f"pyproject.toml [project.scripts] lacks {missing}"
    smoke = " ".join(rest for name, rest in final_stage() if name == "RUN")
    for name in CONSOLE_SCRIPTS:
        assert f"{name} --help" in smoke, f"the build does not check {name}"


def test_the_install_has_the_operator_and_sidecar_extras() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"operator", "sidecar"} <= set(extras)
    assert '".[operator,sidecar]"' in DOCKERFILE


def test_the_dockerignore_keeps_everything_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        # Docker's rule: the last matching pattern wins; "!" re-includes.
        result = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                result = not negated
        return result

    copied = [
        rest.split()[:-1]
        for name, rest in instructions()
        if name == "COPY" and not rest.startswith("--from")
    ]
    sources = [source for group in copied for source in group]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source), f".dockerignore drops {source}, which the build copies"
    assert ignored(".venv") and ignored("tests") and ignored(".git")
