"""The webhook server alone, as a real process: ``python -m tests.operator.webhook_process``.

For tests that measure the process (memory, open descriptors) while something attacks it
over TCP: the admission decisions, the HTTPS server, the health server (``/metrics``) and,
when ``KUBECONFIG`` is set, the Event recorder posting to that API server, all with the
operator's defaults. Prints ``ready`` once both ports listen; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

import kopf

from profilis_operator.admission import Admission, AdmissionState, EventSpec
from profilis_operator.effective_config import InjectionConfig
from profilis_operator.events import EventRecorder
from profilis_operator.health import HealthServer, OperatorMetrics
from profilis_operator.injection import ClusterCapabilities
from profilis_operator.kubeapi import KubeApi, connection_info
from profilis_operator.webhook import CertificateFiles, WebhookServer


async def serve(args: argparse.Namespace) -> None:
    state = AdmissionState(
        defaults=InjectionConfig(),
        capabilities=ClusterCapabilities(native_sidecars=True),
        excluded_namespaces=frozenset({"kube-system", "profilis-system"}),
        ready=True,
    )
    metrics = OperatorMetrics()
    recorder: EventRecorder | None = None
    if args.events:
        api = KubeApi(lambda: connection_info(kopf.OperatorSettings()))
        try:
            recorder = EventRecorder(api, metrics=metrics)
        except TypeError:  # a tree from before the recorder counted (for before/after figures)
            recorder = EventRecorder(api)
        recorder.start()

    def record(event: EventSpec) -> None:
        if recorder is not None:
            recorder.record(event)

    webhook = WebhookServer(
        Admission(state),
        CertificateFiles(Path(args.cert), Path(args.key)),
        metrics,
        host="127.0.0.1",
        port=args.port,
        record_event=record,
        reload_interval_s=args.reload_interval,
    )
    health = HealthServer(metrics, lambda: True, host="127.0.0.1", port=args.health_port)
    await health.start()
    await webhook.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await webhook.stop()
    await health.stop()
    if recorder is not None:
        await recorder.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--health-port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--reload-interval", type=float, default=10.0)
    parser.add_argument("--events", action="store_true", help="post Events to KUBECONFIG's API")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
