"""The few Kubernetes API calls kopf does not make for us, and the Events the webhook records.

kopf patches the objects its handlers are about; this client does the rest: annotating a
workload's pod template when a ProfilisConfig changes, setting the webhook configuration's
``caBundle``, reading the server version, posting Events. It logs in exactly as kopf does
(``connection_info``: in-cluster service account, else ``KUBECONFIG``) and talks through
aiohttp, which kopf already brings; a 401 makes it log in again once (rotated tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import kopf

from profilis import __version__
from profilis_operator.admission import EventSpec

__all__ = ["ApiError", "EventRecorder", "KubeApi", "connection_info"]

log = logging.getLogger("profilis.operator.api")
#: Seconds one API call may take; the callers retry on their own schedule.
_REQUEST_TIMEOUT_S: Final = 10.0
#: Names the operator's own calls in the API server's audit log (kopf's say "kopf/...").
_USER_AGENT: Final = f"profilis-operator/{__version__}"


class ApiError(Exception):
    """An API call failed: ``status`` is the HTTP status (0 when no answer came)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, else the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
    info = kopf.login_with_service_account(settings=settings)
    return info if info is not None else kopf.login_with_kubeconfig(settings=settings)


class KubeApi:
    """JSON over HTTPS to the API server, with the credentials ``login`` returns."""

    def __init__(self, login: Callable[[], kopf.ConnectionInfo | None]) -> None:
        self._login = login
        self._session: aiohttp.ClientSession | None = None
        self._info: kopf.ConnectionInfo | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = "application/json",
    ) -> Any:
        """The decoded JSON answer; ``ApiError`` for any non-2xx status or connection error."""
        for attempt in (1, 2):
            session, info = await self._connect(renew=attempt == 2)
            headers = {"Accept": "application/json", **info.as_http_headers()}
            data = None
            if body is not None:
                headers["Content-Type"] = content_type
                data = json.dumps(body).encode()
            try:
                async with session.request(
                    method, info.server.rstrip("/") + path, data=data, headers=headers
                ) as response:
                    text = await response.text()
                    if response.status == 401 and attempt == 1:
                        continue  # the token may have rotated: log in again, once
                    if response.status >= 300:
                        raise ApiError(response.status, text[:500])
                    return json.loads(text) if text else None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise ApiError(0, f"{method} {path}: {exc!r}") from None
        raise ApiError(401, "unauthorized after logging in again")  # pragma: no cover

    async def server_version(self) -> tuple[int, int] | None:
        """(major, minor) of the API server, or None if it will not say."""
        try:
            answer = await self.request("GET", "/version")
            major = int(str(answer["major"]).rstrip("+"))
            minor = int(str(answer["minor"]).rstrip("+"))
        except (ApiError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot read the Kubernetes version: %s", exc)
            return None
        return major, minor

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def _connect(self, renew: bool) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if renew or self._session is None or self._info is None:
            await self.close()
            info = self._login()
            if info is None:
                raise ApiError(0, "no Kubernetes credentials (not in a cluster, no KUBECONFIG)")
            connector = aiohttp.TCPConnector(ssl=self._ssl_context(info), limit=8)
            timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers={"User-Agent": _USER_AGENT}
            )
            self._info = info
        return self._session, self._info

    def _ssl_context(self, info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
        if info.server.startswith("http://"):
            return False
        context = ssl.create_default_context(
            cafile=_text_path(info.ca_path),
            cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
        )
        if info.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        certificate = _text_path(info.certificate_path) or self._spill(info.certificate_data)
        key = _text_path(info.private_key_path) or self._spill(info.private_key_data)
        if certificate and key:
            context.load_cert_chain(certificate, key)
        return context

    def _spill(self, data: str | bytes | None) -> str | None:
        """ssl loads client certificates from files only: write inline ones to a private dir."""
        if data is None:
            return None
        if self._tempdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="profilis-operator-")
        fd, path = tempfile.mkstemp(dir=self._tempdir.name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        return path


def _text_path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None) -> str | None:
    return None if path is None else os.fsdecode(path)


class EventRecorder:
    """Posts Kubernetes Events in the background; ``record`` never waits and never raises.

    The queue is bounded (a full one drops, counted by ``dropped``), and an identical event
    (same object, reason and message) is posted once per ``repeat_after_s``: a rollout of
    fifty replicas leaves one "injected" event on its ReplicaSet, not fifty.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        component: str = "profilis-operator",
        queue_size: int = 1000,
        repeat_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._component = component
        self._queue: asyncio.Queue[EventSpec] = asyncio.Queue(queue_size)
        self._recent: dict[tuple[str, ...], float] = {}
        self._repeat_after_s = repeat_after_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.posted = 0

    def record(self, event: EventSpec) -> None:
        involved = event.involved
        key = (
            event.namespace,
            involved.get("kind", ""),
            involved.get("name", ""),
            event.reason,
            event.message,
        )
        now = self._clock()
        last = self._recent.get(key)
        if last is not None and now - last < self._repeat_after_s:
            return
        if len(self._recent) > 10_000:  # forget old keys rather than grow without bound
            self._recent = {k: t for k, t in self._recent.items() if now - t < self._repeat_after_s}
        self._recent[key] = now
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._post_forever(), name="profilis-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _post_forever(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._api.request(
                    "POST", f"/api/v1/namespaces/{event.namespace}/events", self._body(event)
                )
                self.posted += 1
            except ApiError as exc:
                # Events are best effort; the metrics and the pod's own annotation remain.
                log.warning("cannot post event %s: %s", event.reason, exc)

    def _body(self, event: EventSpec) -> Mapping[str, Any]:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = event.involved.get("name", "pod")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            # Named as the kubelet names its events: the object, then a unique suffix.
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": event.namespace},
            "involvedObject": dict(event.involved),
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
