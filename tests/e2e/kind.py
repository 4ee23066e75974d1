"""Driving a kind cluster from tests: commands with deadlines, and port-forwards.

``Cluster`` runs kubectl, helm, kind and docker against one cluster (its own kubeconfig
file, so the user's contexts are never touched); every call has a timeout and fails with
the command's output. ``port_forward`` yields local ports forwarded to a pod's ports and
stops kubectl on the way out.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


class CommandError(AssertionError):
    """A command failed; the message holds its argv, exit status and output."""


def run(argv: Sequence[str | Path], *, timeout: float, input_text: str | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
    )
    if result.returncode != 0:
        command = " ".join(map(str, argv))
        raise CommandError(
            f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def docker_unavailable() -> str | None:
    """Why the suite cannot run here (everything missing), or None when it can."""
    missing = []
    if shutil.which("docker") is None:
        missing.append("docker is not on PATH")
    else:
        try:
            info = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if info.returncode != 0:
                first_line = (info.stderr.strip() or info.stdout.strip()).splitlines()[:1]
                missing.append(f"no Docker engine ({' '.join(first_line)})")
        except subprocess.TimeoutExpired:
            missing.append("the Docker engine did not answer `docker info` within 30 s")
    missing += [f"{tool} is not on PATH" for tool in ("kind", "kubectl") if not shutil.which(tool)]
    return "; ".join(missing) or None


def wait_until(what: str, check: Callable[[], Any], *, timeout: float, every: float = 2) -> Any:
    """The first truthy ``check()``, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(every)


@dataclass(frozen=True)
class Cluster:
    name: str
    kubeconfig: Path
    helm_binary: Path

    def kubectl(self, *args: str | Path, timeout: float = 60, input_text: str | None = None) -> str:
        return run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            timeout=timeout,
            input_text=input_text,
        )

    def kubectl_json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout))

    def helm(self, *args: str | Path, timeout: float = 600) -> str:
        return run([self.helm_binary, "--kubeconfig", self.kubeconfig, *args], timeout=timeout)

    def load_image(self, image: str) -> None:
        run(["kind", "load", "docker-image", image, "--name", self.name], timeout=600)

    def current_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Running pods of the Deployment's newest ReplicaSet (rollout finished)."""
        pods = self.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
        return [
            pod
            for pod in pods
            if pod["status"].get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        ]


@contextlib.contextmanager
def port_forward(
    cluster: Cluster, namespace: str, pod: str, ports: Sequence[int], *, timeout: float = 60
) -> Iterator[dict[int, int]]:
    """{pod port: local port} on 127.0.0.1 while the block runs."""
    argv = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "port-forward", "-n", namespace]
    argv += ["--address", "127.0.0.1", f"pod/{pod}", *(f":{port}" for port in ports)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        local: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while len(local) < len(ports):
            # kubectl prints one "Forwarding from" line per port once the tunnel is up.
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise CommandError(f"kubectl port-forward exited {process.returncode}")
            if match := _FORWARDING.search(line):
                local[int(match[2])] = int(match[1])
            if time.monotonic() > deadline:
                raise TimeoutError(f"port-forward to {pod} not up within {timeout} s")
        yield local
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
