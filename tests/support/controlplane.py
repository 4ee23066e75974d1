"""A real Kubernetes control plane on 127.0.0.1, for tests and for ``make cluster``.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (v1.34.4), plus kwok, which
keeps one fake node Ready and turns the pods scheduled onto it Running (there is no kubelet
here): Deployments roll out for real, admission webhooks are called, RBAC is enforced. The
binaries come from ``scripts/build-control-plane.sh`` (built once, cached outside the
repository); the PKI is generated afresh for every plane. ``tests/k8s/conftest.py`` starts
one plane for its tests; ``python -m tests.support.controlplane`` runs one until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.processes import free_port, stop_group

__all__ = [
    "BUILD_SCRIPT",
    "ControlPlane",
    "ControlPlaneError",
    "assets_or_reason",
    "binary",
    "kubeconfig",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BUILD_SCRIPT: Final = REPO_ROOT / "scripts" / "build-control-plane.sh"
BINARIES: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
#: The fake node's name; kwok manages nodes carrying this annotation.
NODE_NAME: Final = "kwok-node-0"
_KWOK_ANNOTATION: Final = ("kwok.x-k8s.io/node", "fake")
#: Pod IPs stay on loopback: nothing may leave 127.0.0.0/8 on these machines.
_POD_CIDR: Final = "127.8.0.0/16"
_SERVICE_CIDR: Final = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """The plane could not be built or started; the message names the process and its log."""


def assets_or_reason() -> tuple[Path | None, str]:
    """(assets folder, "") when every binary is built; else (None, why not, in one line)."""
    answer = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if answer.returncode == 0:
        return Path(answer.stdout.strip()), ""
    if shutil.which("go") is None:
        return None, "no Go toolchain: the Kubernetes control plane cannot be built here"
    return None, (
        "the Kubernetes control plane is not built yet: run `make control-plane` "
        "(or `bash scripts/build-control-plane.sh`; ~20 min the first time)"
    )


def binary(assets: Path, name: str) -> Path:
    """``name`` in the cache (the build script links envtest's there when they fit)."""
    return assets / "bin" / name


# --------------------------------------------------------------------------------- the PKI


@dataclass(frozen=True, slots=True)
class _Issued:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class _Authority:
    """A CA that issues the plane's certificates (ECDSA P-256: RSA took seconds here)."""

    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        hosts: Sequence[str] = (),
        server: bool = False,
    ) -> _Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        now = dt.datetime.now(dt.timezone.utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def kubeconfig(
    server: str,
    ca_pem: bytes,
    *,
    user: str,
    client: _Issued | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig as kubectl writes one: certificates inline, base64 (``*-data``)."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials["client-certificate-data"] = base64.b64encode(client.cert_pem).decode()
        credentials["client-key-data"] = base64.b64encode(client.key_pem).decode()
    if token is not None:
        credentials["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "profilis-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": user, "context": {"cluster": "profilis-test", "user": user}},
        ],
        "current-context": user,
    }


# ------------------------------------------------------------------------------ the plane


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class ControlPlane:
    """One plane in ``workdir``; ``start()`` returns when a pod can be scheduled and run."""

    assets: Path
    workdir: Path
    server: str = ""
    ca_pem: bytes = b""
    admin_kubeconfig: Path = field(default_factory=Path)
    started_s: float = 0.0
    _processes: list[_Process] = field(default_factory=list)
    _admin: _Issued | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        began = time.monotonic()
        deadline = began + timeout_s
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM then SIGKILL exactly the processes this plane started, newest first."""
        for process in reversed(self._processes):
            stop_group(process.proc)
        self._processes.clear()

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self._processes if p.proc.poll() is None]

    def logs(self) -> dict[str, Path]:
        return {p.name: p.log_path for p in self._processes}

    def write_kubeconfig(self, path: Path, *, user: str, token: str) -> Path:
        """A kubeconfig that acts as whoever ``token`` belongs to (a ServiceAccount's)."""
        path.write_text(json.dumps(kubeconfig(self.server, self.ca_pem, user=user, token=token)))
        path.chmod(0o600)
        return path

    # -- internals ---------------------------------------------------------------------

    def _start(self, deadline: float) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        files = _write_pki(pki, self)
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        assert self._admin is not None
        self.admin_kubeconfig.write_text(
            json.dumps(kubeconfig(self.server, self.ca_pem, user="admin", client=self._admin))
        )
        self.admin_kubeconfig.chmod(0o600)
        self._launch(
            "etcd",
            [
                f"--data-dir={self.workdir / 'etcd'}",
                "--name=default",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                # A test cluster's data is thrown away: no fsync, and a loaded machine's
                # slow disk does not time out the API server.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._launch(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={files['apiserver.crt']}",
                f"--tls-private-key-file={files['apiserver.key']}",
                f"--client-ca-file={files['ca.crt']}",
                f"--service-account-key-file={files['sa.pub']}",
                f"--service-account-signing-key-file={files['sa.key']}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={_SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # Otherwise it loops on "127.0.0.1 may not be in the loopback range".
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                f"--requestheader-client-ca-file={files['front-proxy-ca.crt']}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={files['front-proxy-client.crt']}",
                f"--proxy-client-key-file={files['front-proxy-client.key']}",
                "--profiling=false",
            ],
        )
        self._wait_ready("/readyz", deadline)
        # Only now: the controller-manager exits if RBAC's bootstrap roles are not there yet.
        for name, identity in (
            ("kube-controller-manager", "controller-manager"),
            ("kube-scheduler", "scheduler"),
        ):
            config = self._component_kubeconfig(identity, files)
            extra = (
                [
                    f"--service-account-private-key-file={files['sa.key']}",
                    f"--root-ca-file={files['ca.crt']}",
                    "--use-service-account-credentials=true",
                    f"--cluster-signing-cert-file={files['ca.crt']}",
                    f"--cluster-signing-key-file={files['ca.key']}",
                ]
                if name == "kube-controller-manager"
                else []
            )
            self._launch(
                name,
                [
                    f"--kubeconfig={config}",
                    f"--authentication-kubeconfig={config}",
                    f"--authorization-kubeconfig={config}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    "--leader-elect=false",
                    *extra,
                ],
            )
        self._launch(
            "kwok",
            [
                f"--kubeconfig={self._component_kubeconfig('kwok', files)}",
                "--config=/dev/null",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(_KWOK_ANNOTATION)}",
                f"--cidr={_POD_CIDR}",
                "--node-ip=127.0.0.1",
                # Heartbeats through a node Lease, renewed every few seconds. Without it kwok
                # writes the node's status only every ~55 s, past the controller-manager's
                # 50 s grace period: the node turned NotReady for a few seconds each minute,
                # the node controller marked every pod on it unready, and rollouts stalled.
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        self._create_node(deadline)

    def _launch(self, name: str, args: Sequence[str]) -> None:
        log_path = self.workdir / "logs" / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(binary(self.assets, name)), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.workdir,
            )
        self._processes.append(_Process(name, proc, log_path))

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.proc.poll() is not None:
                raise ControlPlaneError(
                    f"{process.name} exited with {process.proc.returncode}; "
                    f"its log ({process.log_path}) ends:\n{process.tail()}"
                )

    def _ssl_context(self) -> ssl.SSLContext:
        assert self._admin is not None
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        # ssl loads client certificates from files only.
        pki = self.workdir / "pki"
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        return context

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One call as the cluster admin (system:masters); the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text.strip().startswith(b"{") else text.decode()

    def _wait_ready(self, path: str, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self.request("GET", path) == "ok":
                    return
            except OSError as exc:  # refused while starting, or 500 until every check passes
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready within the deadline: {last}")

    def _create_node(self, deadline: float) -> None:
        key, value = _KWOK_ANNOTATION
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {key: value},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"},
            },
        }
        self.request("POST", "/api/v1/nodes", node)
        while time.monotonic() < deadline:
            self._check_alive()
            status = self.request("GET", f"/api/v1/nodes/{NODE_NAME}").get("status", {})
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if conditions.get("Ready") == "True":
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"kwok did not make node {NODE_NAME} Ready within the deadline")

    def _component_kubeconfig(self, identity: str, files: Mapping[str, Path]) -> Path:
        path = self.workdir / "pki" / f"{identity}.kubeconfig"
        client = _Issued(
            files[f"{identity}.crt"].read_bytes(), files[f"{identity}.key"].read_bytes()
        )
        path.write_text(
            json.dumps(kubeconfig(self.server, self.ca_pem, user=identity, client=client))
        )
        return path


def _write_pki(directory: Path, plane: ControlPlane) -> dict[str, Path]:
    """Every certificate and key the plane uses, as files; fills the plane's CA and admin."""
    ca = _Authority("profilis-test-ca")
    front_proxy = _Authority("profilis-test-front-proxy-ca")
    issued = {
        "apiserver": ca.issue(
            "kube-apiserver",
            hosts=[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            server=True,
        ),
        "admin": ca.issue("admin", organizations=["system:masters"]),
        "controller-manager": ca.issue("system:kube-controller-manager"),
        "scheduler": ca.issue("system:kube-scheduler"),
        # kwok writes node and pod status as a kubelet would; masters is simplest here.
        "kwok": ca.issue("kwok", organizations=["system:masters"]),
        "front-proxy-client": front_proxy.issue("front-proxy-client"),
    }
    files: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        files[name] = path

    write("ca.crt", ca.cert_pem)
    write("ca.key", _key_pem(ca.key))
    write("front-proxy-ca.crt", front_proxy.cert_pem)
    for name, pair in issued.items():
        write(f"{name}.crt", pair.cert_pem)
        write(f"{name}.key", pair.key_pem)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    write("sa.key", _key_pem(sa_key))
    write(
        "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    plane.ca_pem = ca.cert_pem
    plane._admin = issued["admin"]
    plane.admin_kubeconfig = directory / "admin.kubeconfig"
    return files


@contextlib.contextmanager
def running(assets: Path, workdir: Path | None = None) -> Iterator[ControlPlane]:
    """A started plane for the duration of the block; its processes stop on the way out."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="k8s-")))
        plane = ControlPlane(assets, workdir)
        plane.start()
        stack.callback(plane.stop)
        yield plane


def main(argv: Sequence[str] | None = None) -> int:
    """``make cluster``: start a plane, print how to use it, stop it on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.controlplane")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: temp)")
    args = parser.parse_args(argv)
    assets, reason = assets_or_reason()
    if assets is None:
        print(f"cluster: {reason}", file=sys.stderr)
        return 2
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with running(assets, args.workdir) as plane:
        print(f"cluster: ready in {plane.started_s:.1f} s: {plane.server}")
        print(f"  export KUBECONFIG={plane.admin_kubeconfig}")
        print(f"  logs: {plane.workdir / 'logs'}")
        print("  Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # stop the plane on SIGTERM as on Ctrl-C
    sys.exit(main())
