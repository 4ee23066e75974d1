"""The chart installed on the real plane, and the operator run as a local process under the
chart's identity.

There is no kubelet, so the operator Deployment's pod never executes anything: the same
operator runs on this machine instead, as a developer runs one (the chart's
``webhook.url`` points the API server at it on 127.0.0.1, ``operator.replicas=0``). It gets
exactly what the chart gives its pod: the container's rendered arguments and environment,
the defaults file from the chart's ConfigMap, the serving certificate from the chart's
Secret, and a token of the chart's ServiceAccount (TokenRequest), so every call it makes is
authorised by the chart's RBAC on the real API server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.chart.helm import CHART
from tests.k8s.kube import PROFILIS_IMAGE, HelmCli, Kube, wait_for
from tests.support.processes import free_port, stop_group


@dataclass
class Release:
    """A helm release of the chart on the plane."""

    helm: HelmCli
    name: str
    namespace: str
    values: list[str] = field(default_factory=list)

    def install(self, *extra: str) -> str:
        return self.helm.ok(
            "install", self.name, CHART, "--namespace", self.namespace, "--create-namespace",
            *self._value_args(), *extra, "--wait", "--timeout", "120s",
        )  # fmt: skip

    def upgrade(self, *extra: str) -> str:
        return self.helm.ok(
            "upgrade", self.name, CHART, "--namespace", self.namespace,
            *self._value_args(), *extra, "--wait", "--timeout", "120s",
        )  # fmt: skip

    def uninstall(self) -> str:
        return self.helm.ok("uninstall", self.name, "--namespace", self.namespace, "--wait")

    def manifests(self) -> list[dict[str, Any]]:
        text = self.helm.ok("get", "manifest", self.name, "--namespace", self.namespace)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def manifest(self, kind: str) -> dict[str, Any]:
        (found,) = [m for m in self.manifests() if m["kind"] == kind]
        return found

    def _value_args(self) -> list[str]:
        args = ["--set", f"image.repository={PROFILIS_IMAGE.rsplit(':', 1)[0]}"]
        args += ["--set", f"image.tag={PROFILIS_IMAGE.rsplit(':', 1)[1]}"]
        for value in self.values:
            args += ["--set" if "=" in value else "--values", value]
        return args


def out_of_cluster_values(webhook_port: int, *more: str) -> list[str]:
    """Values for an operator that runs on this machine: the API server calls it at
    127.0.0.1, the Deployment runs no replica, the status refreshes every second."""
    return [
        f"webhook.url=https://127.0.0.1:{webhook_port}/mutate-pods",
        "operator.replicas=0",
        "operator.extraArgs={--status-interval=1}",
        *more,
    ]


@dataclass
class LocalOperator:
    """``profilis-operator`` with the chart's command line, identity and files."""

    kube: Kube
    release: Release
    workdir: Path
    webhook_port: int
    health_port: int = field(default_factory=free_port)
    extra_args: Sequence[str] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _log_offset: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "operator.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The rendered container's args and env, made local (ports, files, namespace)."""
        rendered = self.release.manifest("Deployment")
        (container,) = rendered["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["profilis-operator"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == (
                "metadata.namespace"
            ):
                env[item["name"]] = self.release.namespace
            else:
                env[item["name"]] = "local-operator"  # POD_NAME: any name will do here
        defaults = self.workdir / "defaults.yaml"
        manifests = self.release.manifests()
        (defaults_map,) = [
            m for m in manifests if m["kind"] == "ConfigMap" and "defaults.yaml" in m["data"]
        ]
        configmap = self.kube.core.read_namespaced_config_map(
            defaults_map["metadata"]["name"], self.release.namespace
        )
        defaults.write_text(configmap.data["defaults.yaml"])
        env["PROFILIS_OPERATOR_DEFAULTS"] = str(defaults)
        args = list(container["args"])
        if any(a.startswith("--tls-cert-file") for a in args):
            (tls,) = [m for m in manifests if m.get("type") == "kubernetes.io/tls"]
            secret = self.kube.secret_data(self.release.namespace, tls["metadata"]["name"])
            for key in ("tls.crt", "tls.key"):
                (self.workdir / key).write_bytes(secret[key])
            args += [f"--tls-cert-file={self.workdir / 'tls.crt'}"]
            args += [f"--tls-key-file={self.workdir / 'tls.key'}"]
        else:
            args += [f"--cert-dir={self.workdir / 'certs'}"]
        # Later flags win in argparse: only the listening addresses change.
        args += ["--webhook-host=127.0.0.1", f"--webhook-port={self.webhook_port}"]
        args += ["--health-host=127.0.0.1", f"--health-port={self.health_port}"]
        return [*args, *self.extra_args], {**env, **self.extra_env}

    def start(self) -> None:
        args, env = self.command()
        token = self.kube.service_account_token(self.release.namespace, self.service_account)
        kubeconfig = self.kube.plane.write_kubeconfig(
            self.workdir / "operator.kubeconfig", user="profilis-operator", token=token
        )
        full_env = {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}
        full_env.pop("KUBEBUILDER_ASSETS", None)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "profilis_operator", *args],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_ready()

    @property
    def service_account(self) -> str:
        rendered = self.release.manifest("Deployment")
        return str(rendered["spec"]["template"]["spec"]["serviceAccountName"])

    def wait_ready(self) -> None:
        def ready() -> int:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.output()[-3000:]}")
            return self.http_status("/readyz")

        try:
            wait_for(ready, lambda status: status == 200, "the operator's /readyz")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- operator output ---\n{self.output()[-3000:]}"
            ) from None

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}{path}", timeout=5
            ) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def metrics(self) -> dict[str, float]:
        """The operator's /metrics, ``name{labels}`` -> value."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.health_port}/metrics", timeout=5
        ) as answer:
            text = answer.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def output(self, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self._log_offset if since_start else 0 :].decode(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)  # a paused operator cannot exit
        stop_group(self.proc, 30)
        self.proc = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP: the port still accepts connections (the kernel does), nothing answers."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.proc.pid, signal.SIGCONT)


@contextlib.contextmanager
def operator_release(
    kube: Kube, helm: HelmCli, name: str, namespace: str, workdir: Path, *values: str
) -> Iterator[LocalOperator]:
    """Install the chart for an out-of-cluster operator (``values`` on top), run that
    operator here, and take both down on the way out."""
    port = free_port()
    release = Release(helm, name, namespace, out_of_cluster_values(port, *values))
    release.install()
    local = LocalOperator(kube, release, workdir, port)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        release.uninstall()
