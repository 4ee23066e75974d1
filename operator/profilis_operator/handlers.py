"""Wires the operator into kopf: ``register(registry, options)`` adds every handler.

kopf logs in, lists and watches; its indices hold the ProfilisConfigs (resolved once per
change) and the opted-in namespaces, which the webhook reads live. The startup handler
starts what kopf does not run itself: the webhook server, the health server, the Event
recorder, the ProfilisConfig status writer and, with ``--self-signed``, the certificate and
the caBundle keeper. The same ``register`` serves ``profilis-operator`` and the tests'
``kopf run`` (fresh registry each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from profilis.k8s import API_GROUP, API_VERSION, CONFIG_PLURAL, LABEL_NAMESPACE_INJECT
from profilis_operator import certs, workloads
from profilis_operator.admission import Admission, AdmissionState, ConfigEntry, EventSpec
from profilis_operator.constraints import (
    LimitRangeRules,
    QuotaRules,
    limit_range_rules,
    quota_rules,
)
from profilis_operator.effective_config import resolve
from profilis_operator.errors import InvalidConfigError
from profilis_operator.events import EventRecorder
from profilis_operator.health import HealthServer, OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.kubeapi import KubeApi, connection_info
from profilis_operator.options import OperatorOptions
from profilis_operator.webhook import CertificateFiles, WebhookLimits, WebhookServer

__all__ = ["OperatorRuntime", "register"]

log = logging.getLogger("profilis.operator")


class OperatorRuntime:
    """What lives for as long as the operator runs, beside kopf's own tasks."""

    def __init__(self, options: OperatorOptions, metrics: OperatorMetrics | None = None) -> None:
        self.options = options
        self.metrics = metrics or OperatorMetrics()
        self.state = AdmissionState(
            defaults=options.defaults,
            capabilities=ClusterCapabilities(native_sidecars=options.native_sidecars == "always"),
            excluded_namespaces=options.all_excluded_namespaces,
        )
        self.admission = Admission(self.state)
        self.api = KubeApi(lambda: None)  # replaced at start-up, once kopf's settings exist
        self.events: EventRecorder | None = None
        self._webhook: WebhookServer | None = None
        self._health: HealthServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def record_event(self, event: EventSpec) -> None:
        if self.events is not None:
            self.events.record(event)

    async def start(
        self,
        settings: kopf.OperatorSettings,
        configs: kopf.Index[str, ConfigEntry],
        namespaces: kopf.Index[str, str],
        workload_refs: kopf.Index[str, workloads.WorkloadRef],
        limit_ranges: kopf.Index[str, LimitRangeRules],
        quotas: kopf.Index[str, QuotaRules],
    ) -> None:
        self.state.limit_ranges = limit_ranges
        self.state.quotas = quotas
        try:
            await self._start(settings, configs, namespaces)
            status_writer = workloads.keep_config_statuses(self, configs, workload_refs)
            self._tasks.append(asyncio.create_task(status_writer, name="profilis-status"))
        except BaseException:
            # kopf runs no cleanup for a start-up it cancelled: close what was opened.
            await self.stop()
            raise

    async def _start(
        self,
        settings: kopf.OperatorSettings,
        configs: kopf.Index[str, ConfigEntry],
        namespaces: kopf.Index[str, str],
    ) -> None:
        options = self.options
        self.api = KubeApi(lambda: connection_info(settings))
        self.state.configs = configs
        self.state.namespaces = namespaces
        if options.native_sidecars == "auto":
            version = await self.api.server_version()
            if version is not None:
                self.state.capabilities = ClusterCapabilities.for_version(*version)
        log.info("native sidecars: %s", self.state.capabilities.native_sidecars)
        self.events = EventRecorder(self.api, metrics=self.metrics)
        self.events.start()
        if options.self_signed:
            hostnames = [
                *certs.service_hostnames(options.webhook_service, options.namespace),
                *options.extra_hostnames,
            ]
            bundle = certs.generate(hostnames)
            _, cert_file, key_file = bundle.write(options.cert_dir)
            keeper = certs.keep_ca_bundle(
                self.api,
                options.webhook_config_name,
                bundle.ca_pem,
                interval_s=options.ca_bundle_interval_s,
            )
            self._tasks.append(asyncio.create_task(keeper, name="profilis-ca-bundle"))
        else:
            assert options.tls_cert_file is not None and options.tls_key_file is not None
            cert_file, key_file = options.tls_cert_file, options.tls_key_file
        self._webhook = WebhookServer(
            self.admission,
            CertificateFiles(cert_file, key_file),
            self.metrics,
            host=options.webhook_host,
            port=options.webhook_port,
            record_event=self.record_event,
            reload_interval_s=options.cert_reload_interval_s,
            limits=WebhookLimits(
                max_connections=options.webhook_max_connections,
                handshake_timeout_s=options.webhook_handshake_timeout_s,
                idle_timeout_s=options.webhook_idle_timeout_s,
                max_review_bytes=options.webhook_max_review_bytes,
            ),
        )
        self._health = HealthServer(
            self.metrics,
            lambda: self.state.ready,
            host=options.health_host,
            port=options.health_port,
        )
        await self._health.start()
        await self._webhook.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for server in (self._webhook, self._health):
            if server is not None:
                await server.stop()
        if self.events is not None:
            await self.events.stop()
        await self.api.close()


def register(registry: kopf.OperatorRegistry, options: OperatorOptions) -> OperatorRuntime:
    """Add the operator's handlers to ``registry``; return the runtime they share."""
    runtime = OperatorRuntime(options)
    defaults_spec = options.defaults.to_spec()

    @kopf.on.login(id="login", registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        return connection_info(settings)

    @kopf.on.startup(id="start", registry=registry)
    async def start(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # Handler logs stay logs; Events are only what the operator posts on purpose.
        settings.posting.level = logging.WARNING
        await runtime.start(
            settings,
            kwargs["profilis_configs"],
            kwargs["profilis_namespaces"],
            kwargs["profilis_workloads"],
            kwargs["profilis_limit_ranges"],
            kwargs["profilis_quotas"],
        )

    @kopf.on.cleanup(id="stop", registry=registry)
    async def stop(**_: Any) -> None:
        runtime.state.ready = False
        await runtime.stop()

    @kopf.index(API_GROUP, API_VERSION, CONFIG_PLURAL, id="profilis_configs", registry=registry)
    def profilis_configs(
        namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
    ) -> dict[str, ConfigEntry] | None:
        if namespace is None:
            return None
        generation = body.metadata.get("generation")
        status = dict(body.get("status") or {})
        # Resolved here, once per change, so an admission only looks it up.
        try:
            entry = ConfigEntry(name, resolve(dict(spec), defaults_spec), None, generation, status)
        except InvalidConfigError as exc:
            entry = ConfigEntry(name, None, str(exc), generation, status)
        return {namespace: entry}

    @kopf.index(
        "namespaces",
        labels={LABEL_NAMESPACE_INJECT: kopf.PRESENT},
        id="profilis_namespaces",
        registry=registry,
    )
    def profilis_namespaces(name: str, labels: kopf.Labels, **_: Any) -> dict[str, str]:
        return {name: labels[LABEL_NAMESPACE_INJECT]}

    # LimitRanger and ResourceQuota judge the containers the webhook adds after it answered:
    # the webhook reads these to leave a pod alone rather than get it refused.
    @kopf.index("limitranges", id="profilis_limit_ranges", registry=registry)
    def profilis_limit_ranges(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[str, LimitRangeRules] | None:
        return None if namespace is None else {namespace: limit_range_rules(body)}

    @kopf.index("resourcequotas", id="profilis_quotas", registry=registry)
    def profilis_quotas(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[str, QuotaRules] | None:
        return None if namespace is None else {namespace: quota_rules(body)}

    @kopf.on.event("namespaces", id="indices_ready", registry=registry)
    def indices_ready(**_: Any) -> None:
        # kopf calls non-index handlers only once every index is filled from its first
        # listing; the first namespace event therefore means the webhook has what it needs.
        if not runtime.state.ready:
            log.info("indices populated: the webhook now injects")
        runtime.state.ready = True

    workloads.register(registry, runtime)
    return runtime
