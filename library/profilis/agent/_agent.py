"""The agent of one process: its settings, its collector (built on first need) and its role.

The bootstrap (``profilis.agent.bootstrap``) makes one ``Agent`` per process; the framework
patches (``_frameworks``, ``_servers``) ask it for the emitter when an app, engine or server
worker first needs one, so a Python process that never serves (a management command, a
server's master) never starts a thread. When it does, the collector and exporters come
from ``profilis.config``; any failure is logged once and turns the agent off.

Which processes count as live workers at the sidecar: the collector exporter sends
heartbeats only once the agent is *activated*, i.e. when a gunicorn or uvicorn worker starts
serving, or, under any other server, when the process ships its first batch. A gunicorn
master (``supervising``) is never activated: if it emits events before it forks (``--preload``
with queries at import), they are sent, and it expires from the sidecar's list like any
process that goes quiet.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from profilis.config import Config
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter

if TYPE_CHECKING:
    from profilis.exporters.collector import CollectorExporter

__all__ = ["Agent", "Sink", "build_sinks", "log"]

log = logging.getLogger("profilis.agent")

Event = dict[str, Any]
Sink = Callable[[list[Event]], object]

#: The writer thread's name in this process (thread dumps, and the tests, look for it).
COLLECTOR_THREAD_NAME: Final = "profilis-agent-collector"


class Agent:
    """One process's agent. Thread-safe; every method but ``__init__`` never raises."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._emitter: Emitter | None = None
        self._collector: AsyncCollector[Event] | None = None
        self._exporter: CollectorExporter | None = None
        self._off = False
        #: Instrumentation names already reported as failed (one log line each).
        self._failed: set[str] = set()
        self._supervisor_pid = 0
        self._activated_pid = 0

    # ------------------------------------------------------------------ settings
    def enabled(self, instrumentation: str) -> bool:
        """Whether ``instrumentation`` (flask, wsgi, asgi, sqlalchemy) is on."""
        return (
            not self._off
            and instrumentation not in self.config.disabled_instrumentations
            and instrumentation not in self._failed
        )

    def failed(self, instrumentation: str, error: BaseException) -> None:
        """Turn one instrumentation off, with one log line; the app goes on without it."""
        with self._lock:
            if instrumentation in self._failed:
                return
            self._failed.add(instrumentation)
        log.warning(
            "profilis: %s instrumentation off, the app runs without it: %s: %s",
            instrumentation,
            type(error).__name__,
            error,
        )

    # ------------------------------------------------------------------ the collector
    def emitter(self) -> Emitter | None:
        """The process's emitter, built on the first call; None when the agent is off."""
        emitter = self._emitter
        if emitter is not None or self._off:
            return emitter
        with self._lock:
            if self._emitter is None and not self._off:
                try:
                    self._build()
                except Exception as exc:
                    self._off = True
                    log.warning(
                        "profilis: agent off, the app runs uninstrumented: could not start "
                        "the collector: %s: %s",
                        type(exc).__name__,
                        exc,
                    )
                    return None
            return self._emitter

    @property
    def collector(self) -> AsyncCollector[Event] | None:
        return self._collector

    def _build(self) -> None:
        config = self.config
        sinks, exporter = build_sinks(config)
        if not sinks:
            raise ValueError("no exporter the agent can run (PROFILIS_EXPORTERS)")
        collector: AsyncCollector[Event] = AsyncCollector(
            sinks,
            queue_size=config.queue_size,
            batch_max=config.batch_max,
            flush_interval=config.flush_interval_s,
            drop_oldest=config.drop_oldest,
            enabled=config.enabled,  # every setting explicit: the collector reads no variable
            # Not a filter: it notices the first batch a process ships (see the module doc).
            processors=(self._on_batch,),
            name=COLLECTOR_THREAD_NAME,
        )
        self._collector, self._exporter = collector, exporter
        self._emitter = Emitter(collector)
        log.debug("profilis: collector started in pid %d", os.getpid())

    # ------------------------------------------------------------------ process roles
    def supervising(self) -> None:
        """This process is a server's master: it never counts as a live worker."""
        self._supervisor_pid = os.getpid()

    def serving(self) -> None:
        """This process is a server's worker: build the collector now and report at once."""
        try:
            if self.emitter() is not None:
                self._activate()
        except Exception:  # called from inside the server's worker boot: never fail it
            log.debug("profilis: serving() failed", exc_info=True)

    def _on_batch(self, batch: list[Event]) -> list[Event]:
        # Runs on the writer thread, once per batch: the fast path is one comparison.
        if self._activated_pid != os.getpid():
            self._activate()
        return batch

    def _activate(self) -> None:
        """Start the exporter's heartbeats in this process (once per process)."""
        pid = os.getpid()
        exporter, collector = self._exporter, self._collector
        if exporter is None or collector is None or pid == self._supervisor_pid:
            return
        with self._lock:
            if self._activated_pid == pid:
                return
            self._activated_pid = pid
        try:
            exporter.attach(collector)
        except Exception:  # heartbeats are a convenience: events flow without them
            log.debug("profilis: starting heartbeats failed", exc_info=True)
        else:
            log.debug("profilis: pid %d reports to %s", pid, exporter.address)

    def after_fork_in_child(self) -> None:
        # A lock held by another thread of the parent at fork time stays held here forever.
        self._lock = threading.Lock()


def build_sinks(config: Config) -> tuple[list[Sink], CollectorExporter | None]:
    """The exporters ``config`` names (the sidecar's ``collector`` when it names none).

    The exporters' modules are imported here, on first need, not in every process at start-up.
    ``prometheus`` is skipped with
    a log line: in a pod the sidecar serves ``/metrics`` for every worker.
    """
    sinks: list[Sink] = []
    exporter: CollectorExporter | None = None
    service = config.service_name
    for name in config.exporters or ("collector",):
        if name == "collector":
            from profilis.exporters.collector import CollectorExporter

            exporter = CollectorExporter(config.collector_address, service=service)
            sinks.append(exporter)
        elif name == "jsonl":
            from profilis.exporters.jsonl import JSONLExporter

            sinks.append(JSONLExporter(config.log_dir or ".", service=service))
        elif name == "console":
            from profilis.exporters.console import ConsoleExporter

            # The app's stdout may be its own output (a CLI, a pipe): events go with the logs.
            sinks.append(ConsoleExporter(pretty=False, stream=sys.stderr))
        elif name == "otlp":
            from profilis.exporters.otlp import OTLPExporter

            endpoint = config.otlp_endpoint or ""
            sinks.append(OTLPExporter(endpoint, service_name=service))
        else:
            log.warning(
                "profilis: the %s exporter does not run in the agent (the sidecar serves "
                "/metrics for every worker); PROFILIS_EXPORTERS goes on without it",
                name,
            )
    return sinks, exporter
