"""The per-process ``Agent``: exporters from the config, the collector on demand, the roles.

A real Unix datagram socket stands in for the sidecar, so the heartbeats a role starts (or
does not) are seen as envelopes, as the sidecar would see them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profilis.agent._agent import Agent, build_sinks
from profilis.config import Config, load_config
from profilis.exporters.collector import CollectorExporter
from profilis.exporters.console import ConsoleExporter
from profilis.exporters.jsonl import JSONLExporter
from tests.sidecar.helpers import short_dir


class FakeSidecar:
    """A bound datagram socket; ``envelopes`` decodes what has arrived so far."""

    def __init__(self, path: Path) -> None:
        self.address = f"unix://{path}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2.0)

    def next_envelope(self) -> dict[str, Any]:
        data = self.sock.recv(1 << 16)
        envelope: dict[str, Any] = json.loads(data)
        return envelope


@pytest.fixture
def sidecar() -> Iterator[FakeSidecar]:
    with short_dir() as directory:
        fake = FakeSidecar(directory / "c.sock")
        try:
            yield fake
        finally:
            fake.sock.close()


@pytest.fixture
def make_agent() -> Iterator[Any]:
    agents: list[Agent] = []

    def make(**settings: str) -> Agent:
        agent = Agent(load_config({"PROFILIS_FLUSH_INTERVAL": "0.01", **settings}))
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent.collector is not None:
            agent.collector.close(2.0)


def heartbeat_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "profilis-collector-heartbeat"]


def test_the_sidecar_exporter_is_the_default() -> None:
    sinks, exporter = build_sinks(Config())

    assert [type(s) for s in sinks] == [CollectorExporter]
    assert exporter is sinks[0]
    assert str(exporter.address) == "unix:///var/run/profilis/collector.sock"


def test_exporters_come_from_the_config_and_prometheus_is_left_to_the_sidecar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        {"PROFILIS_EXPORTERS": "jsonl,prometheus,console", "PROFILIS_LOG_DIR": str(tmp_path)}
    )

    with caplog.at_level(logging.WARNING, "profilis.agent"):
        sinks, exporter = build_sinks(config)

    assert [type(s) for s in sinks] == [JSONLExporter, ConsoleExporter]
    assert exporter is None
    assert caplog.messages == [
        "profilis: the prometheus exporter does not run in the agent (the sidecar serves "
        "/metrics for every worker); PROFILIS_EXPORTERS goes on without it"
    ]


def test_nothing_is_built_until_something_needs_the_emitter(make_agent: Any) -> None:
    agent = make_agent()

    assert agent.collector is None
    emitter = agent.emitter()

    assert emitter is not None and agent.emitter() is emitter
    assert agent.collector is not None


def test_a_serving_process_reports_at_once(make_agent: Any, sidecar: FakeSidecar) -> None:
    agent = make_agent(PROFILIS_COLLECTOR_ADDRESS=sidecar.address)

    agent.serving()

    envelope = sidecar.next_envelope()  # a heartbeat: no event was emitted
    assert envelope["events"] == []
    assert envelope["health"]["queue_capacity"] == 2048


def test_any_other_process_reports_from_its_first_batch(
    make_agent: Any, sidecar: FakeSidecar
) -> None:
    agent = make_agent(PROFILIS_COLLECTOR_ADDRESS=sidecar.address)
    emitter = agent.emitter()
    before = heartbeat_threads()

    emitter.emit_fn("job", 1000)
    envelopes = [sidecar.next_envelope(), sidecar.next_envelope()]

    # The batch, and the heartbeat it started (in either order).
    assert sorted(len(e["events"]) for e in envelopes) == [0, 1]
    assert len(heartbeat_threads()) == len(before) + 1


def test_a_supervisor_sends_its_events_but_never_heartbeats(
    make_agent: Any, sidecar: FakeSidecar
) -> None:
    agent = make_agent(PROFILIS_COLLECTOR_ADDRESS=sidecar.address)
    agent.supervising()
    emitter = agent.emitter()
    before = heartbeat_threads()

    emitter.emit_fn("import_time_query", 1000)
    envelope = sidecar.next_envelope()
    assert agent.collector is not None
    agent.collector.flush(1.0)

    assert [e["fn"] for e in envelope["events"]] == ["import_time_query"]
    assert heartbeat_threads() == before


def test_a_collector_that_cannot_start_turns_the_agent_off_with_one_line(
    make_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    agent = make_agent(PROFILIS_EXPORTERS="jsonl", PROFILIS_LOG_DIR=str(blocker / "logs"))

    with caplog.at_level(logging.WARNING, "profilis.agent"):
        assert agent.emitter() is None
        assert agent.emitter() is None
        agent.serving()

    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith("profilis: agent off, the app runs uninstrumented")
    assert not agent.enabled("flask")


def test_a_failed_instrumentation_is_one_line_and_stays_off(
    make_agent: Any, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(PROFILIS_DISABLED_INSTRUMENTATIONS="asgi")

    with caplog.at_level(logging.WARNING, "profilis.agent"):
        agent.failed("flask", RuntimeError("Flask 9 moved things"))
        agent.failed("flask", RuntimeError("again"))

    assert caplog.messages == [
        "profilis: flask instrumentation off, the app runs without it: "
        "RuntimeError: Flask 9 moved things"
    ]
    assert not agent.enabled("flask")
    assert not agent.enabled("asgi")
    assert agent.enabled("sqlalchemy")
