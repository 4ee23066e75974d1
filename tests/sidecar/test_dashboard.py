"""The pod dashboard at /_profilis/: every worker's events on one page, behind a token."""

from __future__ import annotations

import json
from typing import Any

from tests.sidecar.helpers import get, run_loadgen, running_sidecar, short_dir, status, wait_for
from tests.support.processes import free_port

TOKEN = "s3cret-token"


def test_the_pod_dashboard_shows_every_workers_requests_and_asks_for_its_token():
    with short_dir() as tmp:
        sock = tmp / "c.sock"
        port = free_port()
        env = {"PROFILIS_SIDECAR_UI_TOKEN": TOKEN}
        with running_sidecar(sock, port=port, env=env):
            summary = run_loadgen(
                f"unix://{sock}",
                *("--agents", "4", "--events", "1000", "--routes", "4", "--rate", "4000"),
            )
            assert summary["sent"] == 4000, summary

            def guarded_status() -> dict[str, Any]:
                code, body = get(port, f"/_profilis/status.json?token={TOKEN}")
                assert code == 200
                return dict(json.loads(body))

            sidecar = wait_for(
                guarded_status,
                lambda s: (
                    s["counters"]["events_received"] + sum(s["counters"]["dropped"].values())
                    == 4000
                ),
                timeout=15,
            )
            received = sidecar["counters"]["events_received"]
            assert received > 0

            def document() -> dict[str, object]:
                code, body = get(port, f"/_profilis/metrics.json?token={TOKEN}")
                assert code == 200
                return dict(json.loads(body))

            doc = wait_for(
                document,
                lambda d: d["totals"]["http"]["count"] == received,  # type: ignore[index]
                timeout=15,
            )
            routes = {row["route"]: row["count"] for row in doc["routes"]}  # type: ignore[attr-defined]
            # What the sidecar received from all 4 agents, on 4 route templates.
            assert sum(routes.values()) == received
            assert sorted(routes) == [f"/load/{{id}}/{n}" for n in range(4)]
            workers = doc["collector"]["workers"]  # type: ignore[index]
            assert len(workers) == 4
            assert guarded_status()["dashboard"]["sampled_out"] == 0

            # The page itself, and the token check on it.
            code, body = get(port, f"/_profilis/?token={TOKEN}")
            assert code == 200 and b"<html" in body.lower()
            assert get(port, "/_profilis/")[0] == 401
            assert get(port, "/_profilis/metrics.json?token=wrong")[0] == 401
            # The sidecar's own status (workers, services) asks for the same token; /metrics
            # and the probes stay open.
            assert get(port, "/_profilis/status.json")[0] == 401
            assert get(port, "/metrics")[0] == 200


def test_the_dashboard_samples_floods_out_of_the_page_not_out_of_the_metrics():
    with short_dir() as tmp:
        sock = tmp / "c.sock"
        port = free_port()
        with running_sidecar(sock, "--ui-events-per-s", "500", port=port):
            summary = run_loadgen(
                f"unix://{sock}", "--agents", "2", "--events", "5000", "--rate", "5000"
            )
            assert summary["sent"] == 10_000, summary

            def settled(s: dict[str, object]) -> bool:
                counters = s["counters"]
                received = counters["events_received"]  # type: ignore[index]
                return bool(received + sum(counters["dropped"].values()) == 10_000)  # type: ignore[index]

            sidecar = wait_for(lambda: status(port), settled, timeout=15)
            assert settled(sidecar), sidecar["counters"]
            received = sidecar["counters"]["events_received"]

            def page_and_sampled() -> tuple[int, int]:
                doc = json.loads(get(port, "/_profilis/metrics.json")[1])
                return doc["totals"]["http"]["count"], status(port)["dashboard"]["sampled_out"]

            # The page is fed by its own writer thread (every 0.5 s): wait for it to settle.
            shown, sampled_out = wait_for(
                page_and_sampled, lambda p: p[0] + p[1] == received, timeout=10
            )
            # Every received event is either on the page or counted as sampled out of it.
            assert shown + sampled_out == received
            assert 0 < shown < received
