"""The few Kubernetes API calls kopf does not make for us.

kopf lists and watches; ``KubeApi`` makes the operator's own calls: annotating a workload's
pod template and writing each ProfilisConfig's status (``profilis_operator.workloads``),
setting the webhook configuration's ``caBundle`` (``profilis_operator.certs``), reading the
server version, posting Events (``profilis_operator.events``). It logs in exactly as kopf does
(``connection_info``: in-cluster service account, else ``KUBECONFIG``); a 401 makes it log
in again once (rotated service-account tokens).

The calls go through the official ``kubernetes`` client, off the event loop
(``asyncio.to_thread``). Why that client: one Kubernetes client library for the operator and
its tests; typed APIs (paths, parameters, models) instead of URLs spliced by hand; and TLS set
up by the client from the login's credentials (inline kubeconfig data is base64 text, not
PEM, which the hand-made ``ssl`` context this replaced got wrong). Why off the loop: the
operator makes only a handful of calls (the version at start-up, a patch when a workload opts
in or out or its config changes, an Event per rollout), so a thread hop per call costs
nothing that matters, and the webhook never waits for one (Events are queued).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import kopf
import urllib3
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiException,
    AppsV1Api,
    Configuration,
    CoreV1Api,
    CoreV1Event,
    CustomObjectsApi,
    OpenApiException,
    V1MutatingWebhookConfiguration,
    VersionApi,
)

from profilis import __version__
from profilis.k8s import API_GROUP, API_VERSION, CONFIG_PLURAL

__all__ = ["ApiError", "KubeApi", "connection_info"]

log = logging.getLogger("profilis.operator.api")
#: Seconds one API call may take; the callers retry on their own schedule.
_REQUEST_TIMEOUT_S: Final = 10.0
#: Names the operator's own calls in the API server's audit log (kopf's say "kopf/...").
_USER_AGENT: Final = f"profilis-operator/{__version__}"
#: Given explicitly: for a dict body the client would send a strategic merge patch.
_MERGE_PATCH: Final = "application/merge-patch+json"
_JSON_PATCH: Final = "application/json-patch+json"
_T = TypeVar("_T")


class ApiError(Exception):
    """An API call failed: ``status`` is the HTTP status (0 when no usable answer came)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, else the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
    info = kopf.login_with_service_account(settings=settings)
    return info if info is not None else kopf.login_with_kubeconfig(settings=settings)


@dataclass
class _Session:
    """A client built from one login, and the private directory its inline key files live in."""

    client: ApiClient
    files: tempfile.TemporaryDirectory[str] | None

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]  # kubernetes 37 leaves it untyped
        if self.files is not None:
            self.files.cleanup()


class KubeApi:
    """The official client with the credentials ``login`` returns; every call off the loop."""

    def __init__(self, login: Callable[[], kopf.ConnectionInfo | None]) -> None:
        self._login = login
        self._session: _Session | None = None
        self._lock = asyncio.Lock()

    async def server_version(self) -> tuple[int, int] | None:
        """(major, minor) of the API server, or None if it will not say."""
        try:
            info = await self._call(
                "GET /version",
                lambda c: VersionApi(c).get_code(_request_timeout=_REQUEST_TIMEOUT_S),
            )
            major, minor = int(info.major.rstrip("+")), int(info.minor.rstrip("+"))
        except (ApiError, ValueError) as exc:
            log.warning("cannot read the Kubernetes version: %s", exc)
            return None
        return major, minor

    async def read_webhook_configuration(self, name: str) -> V1MutatingWebhookConfiguration:
        return await self._call(
            f"GET mutatingwebhookconfiguration {name}",
            lambda c: AdmissionregistrationV1Api(c).read_mutating_webhook_configuration(
                name, _request_timeout=_REQUEST_TIMEOUT_S
            ),
        )

    async def json_patch_webhook_configuration(
        self, name: str, operations: list[dict[str, Any]]
    ) -> None:
        """Apply RFC 6902 ``operations`` to the MutatingWebhookConfiguration ``name``."""
        await self._call(
            f"PATCH mutatingwebhookconfiguration {name}",
            lambda c: AdmissionregistrationV1Api(c).patch_mutating_webhook_configuration(
                name, operations, _content_type=_JSON_PATCH, _request_timeout=_REQUEST_TIMEOUT_S
            ),
        )

    async def patch_template_annotations(
        self, plural: str, namespace: str, name: str, changes: Mapping[str, str | None]
    ) -> int | None:
        """Merge ``changes`` into the pod template annotations of an apps/v1 workload
        (``plural``: deployments, statefulsets or daemonsets); None deletes a key. Returns
        the workload's ``metadata.generation`` after the patch."""
        body = {"spec": {"template": {"metadata": {"annotations": dict(changes)}}}}

        def patch(client: ApiClient) -> object:
            apps = AppsV1Api(client)
            method: Callable[..., object] = {
                "deployments": apps.patch_namespaced_deployment,
                "statefulsets": apps.patch_namespaced_stateful_set,
                "daemonsets": apps.patch_namespaced_daemon_set,
            }[plural]
            return method(
                name,
                namespace,
                body,
                _content_type=_MERGE_PATCH,
                _request_timeout=_REQUEST_TIMEOUT_S,
            )

        patched = await self._call(f"PATCH {plural} {namespace}/{name}", patch)
        generation = getattr(getattr(patched, "metadata", None), "generation", None)
        return generation if isinstance(generation, int) else None

    async def patch_config_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge ``status`` into a ProfilisConfig's status (through its /status subresource)."""
        await self._call(
            f"PATCH {CONFIG_PLURAL}/status {namespace}/{name}",
            lambda c: CustomObjectsApi(c).patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                namespace,
                CONFIG_PLURAL,
                name,
                {"status": dict(status)},
                _content_type=_MERGE_PATCH,
                _request_timeout=_REQUEST_TIMEOUT_S,
            ),
        )

    async def create_event(self, namespace: str, event: CoreV1Event) -> None:
        await self._call(
            f"POST event in {namespace}",
            lambda c: CoreV1Api(c).create_namespaced_event(
                namespace,
                event,
                # The client names no type for creates (the API server assumes JSON): say it.
                _headers={"Content-Type": "application/json"},
                _request_timeout=_REQUEST_TIMEOUT_S,
            ),
        )

    async def count_event(self, namespace: str, name: str, count: int) -> None:
        """Set an Event's ``count`` and ``lastTimestamp`` (a repeat of it happened)."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        body = {"count": count, "lastTimestamp": now.replace("+00:00", "Z")}
        await self._call(
            f"PATCH event {namespace}/{name}",
            lambda c: CoreV1Api(c).patch_namespaced_event(
                name,
                namespace,
                body,
                _content_type=_MERGE_PATCH,
                _request_timeout=_REQUEST_TIMEOUT_S,
            ),
        )

    async def close(self) -> None:
        async with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    async def _call(self, what: str, operation: Callable[[ApiClient], _T]) -> _T:
        session = await self._connect(stale=None)
        try:
            return await _run(what, operation, session.client)
        except ApiError as exc:
            if exc.status != 401:
                raise
        # The token may have rotated (projected service-account tokens do): log in again, once.
        session = await self._connect(stale=session)
        return await _run(what, operation, session.client)

    async def _connect(self, stale: _Session | None) -> _Session:
        """The current session; a new login if there is none or it is ``stale``."""
        async with self._lock:
            if self._session is None or self._session is stale:
                if self._session is not None:
                    self._session.close()
                    self._session = None
                # Reading the kubeconfig or token and spilling key files is file I/O: off the loop.
                try:
                    self._session = await asyncio.to_thread(_open_session, self._login)
                except ApiError:
                    raise
                except Exception as exc:  # a login handler's failure, whatever its type
                    raise ApiError(0, f"cannot log in: {exc!r}") from None
            return self._session


async def _run(what: str, operation: Callable[[ApiClient], _T], client: ApiClient) -> _T:
    try:
        return await asyncio.to_thread(operation, client)
    except ApiException as exc:
        raise ApiError(exc.status or 0, f"{what}: {exc.reason}: {(exc.body or '')[:500]}") from None
    # Transport failures, and answers the client cannot read (pydantic's are ValueErrors).
    except (OpenApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise ApiError(0, f"{what}: {exc!r}") from None


def _open_session(login: Callable[[], kopf.ConnectionInfo | None]) -> _Session:
    info = login()
    if info is None:
        raise ApiError(0, "no Kubernetes credentials (not in a cluster, no KUBECONFIG)")
    files: tempfile.TemporaryDirectory[str] | None = None

    def spill(data: str | bytes) -> str:
        """urllib3 loads client certificates from files only: inline ones go to a private dir."""
        nonlocal files
        if files is None:
            files = tempfile.TemporaryDirectory(prefix="profilis-operator-")  # mode 0700
        fd, path = tempfile.mkstemp(dir=files.name)  # mode 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(_pem(data))
        return path

    # kopf ignores the proxy environment variables unless told to trust them: so does this.
    env = None if info.trust_env else ""
    config = Configuration(host=info.server.rstrip("/"), proxy=info.proxy_url or env, no_proxy=env)
    config.verify_ssl = not info.insecure
    # One attempt per call, so that _REQUEST_TIMEOUT_S bounds it; the callers retry later.
    config.retries = 0
    # TCP keepalive as client-go has it: a pooled connection that a load balancer dropped
    # while idle is found out, rather than written into until the timeout.
    config.keep_alive = True
    if info.ca_path:
        config.ssl_ca_cert = os.fsdecode(info.ca_path)
    elif info.ca_data:
        config.ca_cert_data = _pem(info.ca_data).decode("ascii")  # str: PEM (bytes means DER)
    try:
        if info.certificate_path:
            config.cert_file = os.fsdecode(info.certificate_path)
        elif info.certificate_data:
            config.cert_file = spill(info.certificate_data)
        if info.private_key_path:
            config.key_file = os.fsdecode(info.private_key_path)
        elif info.private_key_data:
            config.key_file = spill(info.private_key_data)
    except BaseException:  # e.g. a key that is not base64: leave no certificate file behind
        if files is not None:
            files.cleanup()
        raise
    # kopf's own rule picks the header (basic auth, a scheme and token, or a bare token); the
    # client sends its "BearerToken" key, unprefixed here, as the Authorization header.
    authorization = info.as_http_headers().get("Authorization")
    if authorization:
        config.api_key = {"BearerToken": authorization}
    client = ApiClient(config)
    client.user_agent = _USER_AGENT
    return _Session(client, files)


def _pem(data: str | bytes) -> bytes:
    """Inline kubeconfig data is base64 of the PEM text; a login handler may give PEM itself."""
    raw = data.encode("ascii") if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----BEGIN ") else base64.b64decode(raw)
