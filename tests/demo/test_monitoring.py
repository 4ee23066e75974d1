"""The demo's Prometheus side: its copy of the rules, and running on without the servers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from demo import monitoring
from demo.monitoring import QUEUE_ALERTS, RULES_FILE, SHORT_FOR, demo_rules, start_monitoring


def _for_values(path: Path) -> dict[str, str]:
    document = yaml.safe_load(path.read_text())
    return {r["alert"]: r["for"] for g in document["groups"] for r in g["rules"] if "alert" in r}


def test_backpressure_rules_shorten_only_the_queue_alerts(tmp_path: Path) -> None:
    real = _for_values(RULES_FILE)
    short = _for_values(demo_rules(tmp_path, short_queue_alerts=True))
    assert {name: short[name] for name in QUEUE_ALERTS} == dict.fromkeys(QUEUE_ALERTS, SHORT_FOR)
    assert {k: v for k, v in short.items() if k not in QUEUE_ALERTS} == {
        k: v for k, v in real.items() if k not in QUEUE_ALERTS
    }
    assert _for_values(demo_rules(tmp_path, short_queue_alerts=False)) == real


def test_without_prometheus_the_demo_gets_the_reason_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "install-prometheus: not root; run as root: apt-get install ..."
    monkeypatch.setattr(monitoring, "_binaries", lambda: reason)
    started = start_monitoring(
        tmp_path, target="127.0.0.1:1", target_labels={}, short_queue_alerts=False
    )
    assert started == reason
