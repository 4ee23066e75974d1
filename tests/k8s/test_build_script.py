"""scripts/build-control-plane.sh as a user meets it: it reuses envtest's binaries when they
fit, ignores ones of another Kubernetes version, and says in one line that it cannot build
without Go (the tests then skip with that line)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.controlplane import BINARIES, BUILD_SCRIPT, assets_or_reason


@pytest.fixture(scope="module")
def built() -> Path:
    assets, reason = assets_or_reason()
    if assets is None:
        pytest.skip(reason)
    return assets


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def cache_without(built: Path, cache: Path, *missing: str) -> None:
    """A cache folder with every asset of ``built`` but ``missing`` (links, nothing copied)."""
    (cache / "bin").mkdir(parents=True)
    for name in BINARIES:
        if name not in missing:
            (cache / "bin" / name).symlink_to(built / "bin" / name)
    (cache / "crds").symlink_to(built / "crds")


def test_envtest_binaries_that_fit_are_used_not_rebuilt(built: Path, tmp_path: Path) -> None:
    envtest = tmp_path / "envtest"
    envtest.mkdir()
    for name in ("kube-apiserver", "etcd"):
        (envtest / name).symlink_to(built / "bin" / name)
    cache = tmp_path / "cache"
    cache_without(built, cache, "kube-apiserver", "etcd")
    answer = run({"KUBEBUILDER_ASSETS": str(envtest), "PROFILIS_K8S_ASSETS": str(cache)}, "--print")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == str(cache)
    assert (cache / "bin" / "kube-apiserver").readlink() == envtest / "kube-apiserver"


def test_an_envtest_binary_of_another_version_is_ignored(built: Path, tmp_path: Path) -> None:
    envtest = tmp_path / "envtest"
    envtest.mkdir()
    old = envtest / "kube-apiserver"
    old.write_text("#!/bin/sh\necho 'Kubernetes v1.30.0'\n")
    old.chmod(0o755)
    cache = tmp_path / "cache"
    cache_without(built, cache, "kube-apiserver")
    answer = run({"KUBEBUILDER_ASSETS": str(envtest), "PROFILIS_K8S_ASSETS": str(cache)}, "--print")
    assert answer.returncode == 3  # incomplete: it would build v1.34.4 instead
    assert not (cache / "bin" / "kube-apiserver").exists()


@pytest.fixture
def path_without_go(tmp_path: Path) -> str:
    """A PATH with what the script needs but Go."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "date", "mkdir", "head", "sed", "sleep"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_without_go_it_says_so_in_one_line(path_without_go: str, tmp_path: Path) -> None:
    answer = run({"PATH": path_without_go, "PROFILIS_K8S_ASSETS": str(tmp_path / "empty")})
    assert answer.returncode == 2
    assert answer.stderr.strip().splitlines() == [
        "build-control-plane: no Go toolchain here; install Go 1.24+ to build the control plane"
    ]


def test_the_tests_skip_with_one_reason_where_there_is_no_go(
    path_without_go: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without_go)
    monkeypatch.setenv("PROFILIS_K8S_ASSETS", str(tmp_path / "empty"))
    assets, reason = assets_or_reason()
    assert assets is None
    assert reason == "no Go toolchain: the Kubernetes control plane cannot be built here"
