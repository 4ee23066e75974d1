"""The operator's own metrics and its health endpoints (port 8080: /metrics, /healthz, /readyz).

``OperatorMetrics`` holds every series in a registry it is given (tests and embedders pass
their own; nothing is registered globally). ``HealthServer`` serves them with the liveness
and readiness answers the Deployment's probes ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from profilis_operator.admission import RESULTS, AdmissionOutcome

__all__ = ["EVENT_OUTCOMES", "REFUSALS", "HealthServer", "OperatorMetrics"]

#: Values of the ``reason`` label of ``profilis_operator_webhook_connections_refused_total``.
REFUSALS: Final = ("limit", "handshake", "timeout")
#: Values of the ``outcome`` label of ``profilis_operator_events_total``.
EVENT_OUTCOMES: Final = (
    "posted",
    "updated",
    "deduplicated",
    "rate-limited",
    "invalid",
    "dropped",
    "failed",
)
#: Admission latency buckets (seconds): the apiserver's timeout is seconds, our target 5 ms.
_LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class OperatorMetrics:
    """Every series the operator exports, ``profilis_operator_*``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admission_requests = Counter(
            "profilis_operator_admission_requests",
            "Admission reviews answered, by result (all of them allowed: the webhook fails open).",
            ["result"],
            registry=r,
        )
        self.admission_duration = Histogram(
            "profilis_operator_admission_duration_seconds",
            "Time from reading an admission request to having its answer, in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.admission_skips = Counter(
            "profilis_operator_admission_skips",
            "Pods admitted without injection, by reason.",
            ["reason"],
            registry=r,
        )
        self.injections = Counter(
            "profilis_operator_injections", "Pods the webhook instrumented.", registry=r
        )
        self.errors = Counter(
            "profilis_operator_errors",
            "Failures the operator survived, by component (webhook, workloads, tls, events).",
            ["component"],
            registry=r,
        )
        self.workload_updates = Counter(
            "profilis_operator_workload_updates",
            "Pod templates annotated (or cleared) by the workload handlers, by kind.",
            ["kind"],
            registry=r,
        )
        self.tls_reloads = Counter(
            "profilis_operator_tls_reloads",
            "Serving certificates (re)loaded from files.",
            registry=r,
        )
        self.ready = Gauge(
            "profilis_operator_ready", "1 when the webhook serves decisions.", registry=r
        )
        self.webhook_connections = Gauge(
            "profilis_operator_webhook_connections",
            "Connections the webhook holds open, TLS handshakes in progress included.",
            registry=r,
        )
        self.webhook_connections_refused = Counter(
            "profilis_operator_webhook_connections_refused",
            "Webhook connections closed unserved, by reason: limit (too many open), handshake "
            "(TLS failed or too slow), timeout (a request body too slow).",
            ["reason"],
            registry=r,
        )
        self.events = Counter(
            "profilis_operator_events",
            "Kubernetes Events the operator handled, by outcome: posted, updated (a repeat "
            "counted on the Event posted before), deduplicated, rate-limited, invalid, dropped "
            "(queue full), failed.",
            ["outcome"],
            registry=r,
        )
        for result in RESULTS:
            self.admission_requests.labels(result)  # present at 0 from the first scrape
        for component in ("webhook", "workloads", "tls", "events"):
            self.errors.labels(component)
        for reason in REFUSALS:
            self.webhook_connections_refused.labels(reason)
        for outcome in EVENT_OUTCOMES:
            self.events.labels(outcome)
        self._by_result = {result: self.admission_requests.labels(result) for result in RESULTS}

    def observe_admission(self, outcome: AdmissionOutcome, seconds: float) -> None:
        self._by_result[outcome.result].inc()
        self.admission_duration.observe(seconds)
        if outcome.result == "injected":
            self.injections.inc()
        elif outcome.result == "skipped":
            self.admission_skips.labels(outcome.reason).inc()
        elif outcome.result == "error":
            self.errors.labels("webhook").inc()


class HealthServer:
    """HTTP on ``host:port``: /healthz (the loop answers), /readyz (``is_ready()``), /metrics."""

    def __init__(
        self,
        metrics: OperatorMetrics,
        is_ready: Callable[[], bool],
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        self._metrics = metrics
        self._is_ready = is_ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all proves the event loop runs; kopf's own tasks fail the process.
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self._is_ready()
        self._metrics.ready.set(1 if ready else 0)
        return web.Response(
            text="ready\n" if ready else "not ready\n", status=200 if ready else 503
        )

    async def _metrics_page(self, request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
