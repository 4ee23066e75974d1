"""The webhook row's peer: the same injection behind kopf's own ``@kopf.on.mutate`` server.

Run as ``python -m bench.kopf_webhook PORT CERT KEY``. kopf will not start without an API
server to log in to and discover resources from, so kmock (the emulator the operator tests
use) serves that from a thread; nothing is watched, so it stays idle while the webhook is
measured. The handler applies the very jsonpatch ops ``inject`` computes (kopf then diffs the
pod to build its own patch): the difference from our row is kopf's admission path.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import warnings
from typing import Any

import jsonpatch
import kmock
import kopf

from profilis_operator.effective_config import InjectionConfig
from profilis_operator.injection import ClusterCapabilities, inject


def _serve_api(address: dict[str, str], ready: threading.Event) -> None:
    async def main() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                emulator.resources.load_bundled()
            address["url"] = str(emulator.url).rstrip("/")
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    address: dict[str, str] = {}
    ready = threading.Event()
    threading.Thread(target=_serve_api, args=(address, ready), daemon=True).start()
    if not ready.wait(30):
        raise SystemExit("the API emulator did not start")
    config, capabilities = InjectionConfig(), ClusterCapabilities(native_sidecars=True)
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=address["url"], insecure=True)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = kopf.WebhookServer(
            addr="127.0.0.1", port=port, certfile=cert, pkeyfile=key
        )
        settings.admission.managed = None  # no webhook configuration to write
        settings.posting.enabled = False  # no Events: the same work as our row

    @kopf.on.mutate("pods", operation="CREATE", id="mutate-pods", registry=registry)
    def mutate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        ops = inject(dict(body), config, capabilities).patch
        patch.fns.append(lambda pod: jsonpatch.apply_patch(pod, ops, in_place=True))

    kopf.configure(quiet=True)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        import uvloop  # the same loop as our row's server

        uvloop.run(kopf.operator(registry=registry, clusterwide=True, standalone=True))
    except ImportError:
        asyncio.run(kopf.operator(registry=registry, clusterwide=True, standalone=True))


if __name__ == "__main__":
    main()
