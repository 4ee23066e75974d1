"""``python -m profilis_operator.podrun POD.yaml``: run a (patched) pod spec as local processes.

What a kubelet would do, as far as a laptop can: init containers one by one, then native
sidecars (init containers with ``restartPolicy: Always``) kept running once their startup
probe passes, then the app containers. Ctrl-C or SIGTERM stops apps first, sidecars last.

Mapping a pod onto one machine:
- Volumes: each one is a directory under a fresh temp root; a container's mount paths are
  rewritten in its command, args, env values and working dir (longest mount first, only at
  path boundaries), since /var/run/profilis is not writable here.
- Network: a pod has its own; here everything shares the host's, so "0.0.0.0" in args and
  env values becomes 127.0.0.1, and probes go to 127.0.0.1.
- Images: an image table maps each image (matched by repository, tag ignored) to how its
  commands run here: the Profilis image's ``profilis-agent``/``profilis-sidecar`` become this
  interpreter's modules; others get a PATH prefix and a working dir (``--images FILE``).
- Env: only the pod's own variables plus PATH/HOME; the downward API gives the pod's name
  and namespace (``--name``), status.podIP 127.0.0.1; other valueFrom sources are skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from profilis.k8s import DEFAULT_IMAGE_REPOSITORY
from profilis_operator.errors import PodSpecError

__all__ = ["PodRunner", "main"]

_BIN = Path(sys.executable).parent
#: The Profilis image's entry commands, as this installation runs them.
_PROFILIS_COMMANDS = {
    "profilis-agent": [sys.executable, "-m", "profilis.agent.cli"],
    "profilis-sidecar": [sys.executable, "-m", "profilis_sidecar"],
}
_VAR_REF = re.compile(r"\$\((\w+)\)|\$\$")


def _repository(image: str) -> str:
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


class PodRunner:
    """Runs one pod spec; ``start()``, then ``wait()`` or ``stop()``."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        images: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        name: str | None = None,
        root: Path | None = None,
    ) -> None:
        spec = pod.get("spec") or {}
        self.containers = list(spec.get("containers") or [])
        if not self.containers:
            raise PodSpecError("the pod has no containers")
        self.init_containers = list(spec.get("initContainers") or [])
        metadata = pod.get("metadata") or {}
        self.name = name or metadata.get("name") or f"{metadata.get('generateName', 'pod-')}local"
        self.namespace = metadata.get("namespace") or "default"
        self.images = dict(images or {})
        self.root = root or Path(tempfile.mkdtemp(prefix="pr-", dir="/tmp"))
        self.volumes = {}
        for volume in spec.get("volumes") or []:
            path = self.root / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            self.volumes[volume["name"]] = path
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stopping = threading.Event()

    # ---------------------------------------------------------------- mapping
    def argv_env_cwd(
        self, container: Mapping[str, Any]
    ) -> tuple[list[str], dict[str, str], str | None]:
        directories = {
            m["mountPath"].rstrip("/") or "/": str(self.volumes[m["name"]] / m.get("subPath", ""))
            for m in container.get("volumeMounts") or []
        }
        # One pass over all mounts, longest first: a rewritten path is never rewritten again
        # (the temp root itself may sit under a mount path such as /tmp).
        mounts = re.compile(
            "(?:"
            + "|".join(re.escape(mount) for mount in sorted(directories, key=len, reverse=True))
            + r")(?=$|[/:,;\s\"'])"
        )

        def local(text: str) -> str:
            if directories:
                text = mounts.sub(lambda found: directories[found.group(0)], text)
            return text.replace("0.0.0.0", "127.0.0.1")

        image = self.images.get(container.get("image", "")) or self.images.get(
            _repository(container.get("image", "")), {}
        )
        env = {
            "PATH": os.pathsep.join(
                [*image.get("path", []), str(_BIN), os.environ.get("PATH", "")]
            ),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
        }
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = local(_expand(str(item["value"]), env))
            elif "valueFrom" in item:
                value = self._value_from(item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
        command = [*container.get("command", []), *container.get("args", [])]
        if not command:
            raise PodSpecError(
                f"container {container.get('name')} has no command (images have no entrypoint here)"
            )
        argv = [local(_expand(part, env)) for part in command]
        repository = _repository(container.get("image", ""))
        # The Profilis image, from Docker Hub or a mirror ("registry/profilis/profilis").
        is_profilis = repository == DEFAULT_IMAGE_REPOSITORY or repository.endswith(
            "/" + DEFAULT_IMAGE_REPOSITORY
        )
        if is_profilis and argv[0] in _PROFILIS_COMMANDS:
            argv = [*_PROFILIS_COMMANDS[argv[0]], *argv[1:]]
        cwd = container.get("workingDir")
        cwd = local(cwd) if cwd else image.get("workdir")
        return argv, env, cwd

    def _value_from(self, source: Mapping[str, Any]) -> str | None:
        path = (source.get("fieldRef") or {}).get("fieldPath")
        return {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": "127.0.0.1",
            "spec.nodeName": os.uname().nodename,
        }.get(path or "")

    # ---------------------------------------------------------------- running
    def _spawn(self, container: Mapping[str, Any]) -> subprocess.Popen[bytes]:
        argv, env, cwd = self.argv_env_cwd(container)
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        prefix = f"[{container['name']}] ".encode()
        threading.Thread(target=_relay, args=(process, prefix), daemon=True).start()
        return process

    def start(self, startup_timeout_s: float = 60.0) -> None:
        for container in self.init_containers:
            process = self._spawn(container)
            if container.get("restartPolicy") == "Always":
                self.running.append((container["name"], process))
                self._wait_started(container, process, startup_timeout_s)
                continue
            if process.wait() != 0:
                self.stop()
                raise PodSpecError(
                    f"init container {container['name']} exited with {process.returncode}"
                )
        for container in self.containers:
            self.running.append((container["name"], self._spawn(container)))

    def _wait_started(
        self, container: Mapping[str, Any], process: subprocess.Popen[bytes], timeout_s: float
    ) -> None:
        probe = (container.get("startupProbe") or {}).get("httpGet")
        if probe is None:
            return
        port = probe["port"]
        if isinstance(port, str):  # a named port of this container
            port = next(
                p["containerPort"] for p in container.get("ports", []) if p.get("name") == port
            )
        url = f"http://127.0.0.1:{port}{probe.get('path', '/')}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PodSpecError(f"sidecar {container['name']} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status < 400:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise PodSpecError(f"sidecar {container['name']}: startup probe {url} never passed")

    def wait(self) -> int:
        """Until an app container exits or ``stop()``; the exit code of the first to end."""
        apps = {name for name in (c["name"] for c in self.containers)}
        while not self._stopping.is_set():
            for name, process in self.running:
                if name in apps and process.poll() is not None:
                    self.stop()
                    return process.returncode
            self._stopping.wait(0.1)
        return 0

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the apps, then the sidecars (reverse start order), SIGKILL after grace_s."""
        self._stopping.set()
        for _, process in reversed(self.running):
            _terminate(process, grace_s)
        self.running.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes], grace_s: float) -> None:
    if process.poll() is None:
        with _suppress():
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with _suppress():
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], ProcessLookupError)


def _relay(process: subprocess.Popen[bytes], prefix: bytes) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) references to variables defined before; $$ is a literal $."""
    return _VAR_REF.sub(
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m profilis_operator.podrun", description=__doc__.splitlines()[0]
    )
    parser.add_argument("pod", type=Path, help="pod spec (YAML or JSON; a patched one)")
    parser.add_argument("--images", type=Path, help="YAML: image -> {path: [dirs], workdir: dir}")
    parser.add_argument("--name", help="the pod's name for the downward API")
    args = parser.parse_args(argv)
    pod = yaml.safe_load(args.pod.read_text())
    images = yaml.safe_load(args.images.read_text()) if args.images else {}
    runner = PodRunner(pod, images, name=args.name)

    def on_signal(signum: int, frame: object) -> None:
        runner._stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        runner.start()
    except PodSpecError as exc:
        print(f"podrun: {exc}", file=sys.stderr)
        runner.stop()
        return 1
    code = runner.wait()
    runner.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
