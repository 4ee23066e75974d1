"""``profilis-operator`` run as a command: a missing extra, a bad flag and a missing or broken
cluster login each end in one line on stderr, no traceback, with the documented exit status
(2 for a bad flag or variable or a missing extra; 1 when it cannot start)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.commands import run_command

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
SELF_SIGNED = ["--self-signed", "--health-host", "127.0.0.1", "--webhook-host", "127.0.0.1"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without a kubeconfig: HOME has no .kube, KUBECONFIG is unset."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return {**env, "HOME": str(home), **extra}


@pytest.mark.parametrize("module", ["kopf", "orjson", "kubernetes"])
def test_a_missing_extra_names_the_pip_install_to_run(module: str) -> None:
    result = run_command("profilis-operator", SELF_SIGNED, missing=[module])

    assert result.returncode == 2
    assert result.stderr == (
        f"profilis-operator: missing dependency {module!r}; "
        "install it with: pip install 'profilis[operator]'\n"
    )


def test_a_bad_flag_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_command(
        "profilis-operator", [*SELF_SIGNED, "--webhook-port", "70000"], env=clean_env(tmp_path)
    )

    assert result.returncode == 2
    assert result.stderr == (  # the error alone, without argparse's usage block
        "profilis-operator: error: --webhook-port must be a port in [1, 65535], got 70000\n"
    )


@pytest.mark.skipif(SERVICE_ACCOUNT_TOKEN.exists(), reason="this machine is a pod")
def test_without_a_cluster_it_says_what_it_tried_in_one_line(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"

    result = run_command(
        "profilis-operator", [*SELF_SIGNED, "--cert-dir", str(cert_dir)], env=clean_env(tmp_path)
    )

    assert result.returncode == 1
    assert result.stderr == (
        "profilis-operator: no Kubernetes cluster to log in to: tried the in-cluster service "
        f"account ({SERVICE_ACCOUNT_TOKEN}: absent) and a kubeconfig (KUBECONFIG unset, "
        "~/.kube/config absent); run it in a pod with a service account, or set KUBECONFIG "
        "to a kubeconfig file\n"
    )
    assert not cert_dir.exists()  # it stopped before doing anything


@pytest.mark.skipif(SERVICE_ACCOUNT_TOKEN.exists(), reason="this machine is a pod")
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory: {path}"),
        ("contexts: []\n", "Current context is not set in kubeconfigs"),
        ("current-context: shop\ncontexts: []\n", "it names 'shop' but does not define it"),
        (
            "clusters: [\n",
            "not YAML: expected the node content, but found '<stream end>' at line 2",
        ),
    ],
)
def test_an_unusable_kubeconfig_is_named_in_one_line(
    content: str | None, reason: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)

    result = run_command(
        "profilis-operator", SELF_SIGNED, env=clean_env(tmp_path, KUBECONFIG=str(kubeconfig))
    )

    assert result.returncode == 1
    assert result.stderr == (
        f"profilis-operator: cannot use the kubeconfig {kubeconfig} "
        f"({reason.format(path=kubeconfig)}); set KUBECONFIG to a valid kubeconfig file, "
        "or run it in a pod with a service account\n"
    )
