"""Posts the Events the webhook records (``EventRecorder``), bounded by ``EventLimits``.

Takes ``EventSpec``s from ``profilis_operator.admission``, writes them through
``profilis_operator.kubeapi.KubeApi``, checks names with ``profilis_operator.names``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference

from profilis_operator.admission import EventSpec
from profilis_operator.health import OperatorMetrics
from profilis_operator.kubeapi import ApiError, KubeApi
from profilis_operator.names import is_dns_label, is_dns_subdomain, is_kind, is_uid

__all__ = ["EventLimits", "EventRecorder"]

#: The API client's logger, as before the split: log filters keyed on it keep matching.
log = logging.getLogger("profilis.operator.api")


@dataclass(frozen=True, slots=True)
class EventLimits:
    """How many Events the webhook's input can make the operator write (client-go's
    EventCorrelator has the same parts: a series per identical Event, a spam filter)."""

    #: An Event identical to one posted less than this many seconds ago (same object, type,
    #: reason, message) is counted on that one (its ``count``), not posted again.
    series_window_s: float = 600.0
    #: A series' ``count`` is written back at most this often.
    update_interval_s: float = 30.0
    #: Per involved object: a burst of this many new Events, then one per ``object_refill_s``
    #: (client-go's spam filter: 25, then one per 5 minutes).
    object_burst: int = 25
    object_refill_s: float = 300.0
    #: For the whole operator, whatever the objects: a burst, then one call per refill.
    total_burst: int = 50
    total_refill_s: float = 1.0
    #: Series and per-object buckets remembered; the least recently used are forgotten.
    max_tracked: int = 4096


@dataclass
class _Series:
    """One Event as posted, and its repeats."""

    spec: EventSpec
    started: float
    count: int = 1
    name: str | None = None  # the Event's name once posted
    written: int = 0  # the count the API server has
    updated: float = 0.0
    queued: bool = False


@dataclass
class _Bucket:
    """A token bucket: ``take`` spends one token if there is one."""

    tokens: float
    at: float

    def take(self, now: float, burst: int, refill_s: float) -> bool:
        self.tokens = min(float(burst), self.tokens + (now - self.at) / refill_s)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class EventRecorder:
    """Posts Kubernetes Events in the background; ``record`` never waits and never raises.

    What reaches the API server is bounded whatever the webhook is sent (``EventLimits``):
    an identical event is one Event whose ``count`` rises (a rollout of fifty replicas leaves
    one "injected" Event on its ReplicaSet, count 50), new ones are rate-limited per object
    and in total, and an Event naming a namespace or object the API server would refuse is
    not written at all. The queue is bounded (a full one drops). Every outcome is counted in
    ``profilis_operator_events_total``.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        component: str = "profilis-operator",
        queue_size: int = 1000,
        limits: EventLimits | None = None,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._component = component
        self._queue: asyncio.Queue[_Series] = asyncio.Queue(queue_size)
        self._limits = limits or EventLimits()
        self._metrics = metrics
        self._clock = clock
        self._series: OrderedDict[tuple[str, ...], _Series] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._total = _Bucket(float(self._limits.total_burst), clock())
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.posted = 0

    def record(self, event: EventSpec) -> None:
        if not _valid(event):
            self._count("invalid")
            return
        limits, now = self._limits, self._clock()
        involved = event.involved
        target = (event.namespace, involved.get("kind", ""), involved.get("name", ""))
        key = (*target, involved.get("uid", ""), event.type, event.reason, event.message)
        series = self._series.get(key)
        if series is not None and now - series.started < limits.series_window_s:
            series.count += 1
            self._series.move_to_end(key)
            if (
                series.name is not None
                and not series.queued
                and now - series.updated >= limits.update_interval_s
                and self._total.take(now, limits.total_burst, limits.total_refill_s)
            ):
                self._enqueue(series)
            else:
                self._count("deduplicated")  # counted now, written with a later repeat
            return
        bucket = self._buckets.pop(target, None) or _Bucket(float(limits.object_burst), now)
        self._buckets[target] = bucket
        _forget_oldest(self._buckets, limits.max_tracked)
        if not (
            bucket.take(now, limits.object_burst, limits.object_refill_s)
            and self._total.take(now, limits.total_burst, limits.total_refill_s)
        ):
            self._count("rate-limited")
            return
        series = _Series(event, now)
        self._series.pop(key, None)
        self._series[key] = series
        _forget_oldest(self._series, limits.max_tracked)
        self._enqueue(series)

    def start(self) -> None:
        self._task = asyncio.create_task(self._post_forever(), name="profilis-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _enqueue(self, series: _Series) -> None:
        try:
            self._queue.put_nowait(series)
        except asyncio.QueueFull:
            self.dropped += 1
            self._count("dropped")
            return
        series.queued = True

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.events.labels(outcome).inc()

    async def _post_forever(self) -> None:
        while True:
            series = await self._queue.get()
            series.queued = False
            event, count = series.spec, series.count
            try:
                if series.name is None:
                    body = self._body(event, count)
                    await self._api.create_event(event.namespace, body)
                    series.name = body.metadata.name
                    self.posted += 1
                    self._count("posted")
                else:
                    await self._api.count_event(event.namespace, series.name, count)
                    self._count("updated")
                series.written, series.updated = count, self._clock()
            except (ApiError, ValueError) as exc:
                # Events are best effort; the metrics and the pod's own annotation remain.
                # A repeat of an Event not (or no longer) there starts a new one.
                series.name = None
                series.started = -self._limits.series_window_s
                self._count("failed")
                log.warning("cannot post event %s: %s", event.reason, exc)

    def _body(self, event: EventSpec, count: int) -> CoreV1Event:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)  # the API keeps seconds
        involved = event.involved
        # Named as the kubelet names its events: the object, then a unique suffix (a
        # generateName prefix ends in "-", which a name part may not).
        prefix = (involved.get("name") or "pod").rstrip("-.")[:200]
        return CoreV1Event(
            metadata=V1ObjectMeta(name=f"{prefix}.{time.time_ns():x}", namespace=event.namespace),
            involved_object=V1ObjectReference(
                api_version=involved.get("apiVersion") or None,
                kind=involved.get("kind") or None,
                name=involved.get("name") or None,
                namespace=involved.get("namespace") or None,
                uid=involved.get("uid") or None,
            ),
            reason=event.reason,
            message=event.message[:1024],
            type=event.type,
            source=V1EventSource(component=self._component),
            reporting_component=self._component,
            first_timestamp=now,
            last_timestamp=now,
            count=count,
        )


def _valid(event: EventSpec) -> bool:
    """Whether the API server could accept an Event about ``event.involved`` in
    ``event.namespace``: anything else came from a request no API server sent."""
    involved = event.involved
    name = involved.get("name", "")
    return (
        is_dns_label(event.namespace)
        and involved.get("namespace", event.namespace) == event.namespace
        and is_kind(involved.get("kind", ""))
        and (is_dns_subdomain(name) or is_dns_subdomain(name.rstrip("-.")))  # generateName
        and is_uid(involved.get("uid", ""))
        and event.type in ("Normal", "Warning")
        and is_kind(event.reason)
    )


def _forget_oldest(entries: OrderedDict[tuple[str, ...], Any], keep: int) -> None:
    while len(entries) > keep:
        entries.popitem(last=False)
