"""``PROFILIS_*`` as the defaults of the library's own constructors, without the agent.

What a user sets in the environment applies where they left the argument out; what they pass
wins; a bad value fails the constructor, naming the variable. Read once, at construction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profilis import AsyncCollector, ConfigError, Emitter
from profilis.config import ENV_VARS
from profilis.wsgi import ProfilisWSGI

Event = dict[str, Any]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*ENV_VARS, "PROFILIS_DEFAULTS"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def collectors() -> Iterator[list[AsyncCollector[Event]]]:
    made: list[AsyncCollector[Event]] = []
    yield made
    for collector in made:
        collector.close(timeout=2.0)


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.closed = 0

    def __call__(self, batch: list[Event]) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        self.closed += 1


def stopped(collector: AsyncCollector[Event]) -> AsyncCollector[Event]:
    """The collector with its writer gone: what is enqueued now stays queued, for counting."""
    collector.close()
    return collector


# ---------------------------------------------------------------------- AsyncCollector


def test_the_collector_takes_its_queue_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "5")
    monkeypatch.setenv("PROFILIS_DROP_OLDEST", "false")
    collector = stopped(AsyncCollector(Sink()))
    for n in range(7):
        collector.enqueue({"n": n})

    assert collector.queue_capacity == 5
    # drop_oldest=false: the two newest were refused, the first five are still queued
    assert collector.health().dropped["queue"] == 2
    assert collector.queue_depth == 5


def test_batch_max_from_the_environment_sizes_the_batches(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_BATCH_MAX", "3")
    monkeypatch.setenv("PROFILIS_FLUSH_INTERVAL", "30")  # only full batches, and flush()
    sink = Sink()
    collector: AsyncCollector[Event] = AsyncCollector(sink)
    collectors.append(collector)
    for n in range(7):
        collector.enqueue({"n": n})
    assert collector.flush(5)
    assert [len(b) for b in sink.batches] == [3, 3, 1]


def test_explicit_arguments_win_and_leave_the_variables_unread(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "not a number")
    monkeypatch.setenv("PROFILIS_BATCH_MAX", "0")
    monkeypatch.setenv("PROFILIS_FLUSH_INTERVAL", "-1")
    monkeypatch.setenv("PROFILIS_DROP_OLDEST", "maybe")
    monkeypatch.setenv("PROFILIS_ENABLED", "false")
    # The agent's way: every setting passed, none read again (nor refused) here.
    collector: AsyncCollector[Event] = AsyncCollector(
        Sink(), queue_size=10, batch_max=2, flush_interval=0.2, drop_oldest=True, enabled=True
    )
    collectors.append(collector)

    assert (collector.queue_capacity, collector.enabled) == (10, True)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("PROFILIS_QUEUE_SIZE", "0", r"PROFILIS_QUEUE_SIZE must be an integer in \[1, 10000000\]"),
        ("PROFILIS_BATCH_MAX", "1e3", r"PROFILIS_BATCH_MAX must be an integer in \[1, 100000\]"),
        ("PROFILIS_FLUSH_INTERVAL", "0", r"PROFILIS_FLUSH_INTERVAL must be a number in \(0, 60\]"),
        ("PROFILIS_DROP_OLDEST", "sometimes", "PROFILIS_DROP_OLDEST must be one of true, false"),
        ("PROFILIS_ENABLED", "y", "PROFILIS_ENABLED must be one of true, false"),
    ],
)
def test_a_bad_variable_fails_the_construction_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, message: str
) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError, match=f"^{message}.*, got '{text}'$"):
        AsyncCollector(Sink())


def test_profilis_defaults_fills_in_under_the_variables(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv(
        "PROFILIS_DEFAULTS", '{"PROFILIS_QUEUE_SIZE": "7", "PROFILIS_BATCH_MAX": "2"}'
    )
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "9")
    collector: AsyncCollector[Event] = AsyncCollector(Sink())
    collectors.append(collector)

    assert collector.queue_capacity == 9  # the variable wins over PROFILIS_DEFAULTS


def test_variables_are_read_at_construction_not_at_import_nor_later(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "4")
    collector: AsyncCollector[Event] = AsyncCollector(Sink())
    collectors.append(collector)
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "8")

    assert collector.queue_capacity == 4
    collectors.append(AsyncCollector(Sink()))
    assert collectors[-1].queue_capacity == 8


# ---------------------------------------------------------------------- PROFILIS_ENABLED


def test_disabled_collector_starts_no_thread_calls_no_sink_and_counts_what_it_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROFILIS_ENABLED", "false")
    sink = Sink()
    collector: AsyncCollector[Event] = AsyncCollector(sink, name="profilis-off")
    emitter = Emitter(collector)
    for _ in range(3):
        emitter.emit_fn("f", 1)
    collector.enqueue({"kind": "FN"})

    assert collector.enabled is False
    assert "profilis-off" not in {t.name for t in threading.enumerate()}
    health = collector.health()
    assert health.dropped == {"queue": 0, "processor": 0, "export": 0, "disabled": 4}
    assert (health.enqueued, health.exported, health.queue_depth) == (4, 0, 0)
    assert collector.flush(0.0) is True
    collector.close()
    assert (sink.batches, sink.closed) == ([], 1)  # never called, still closed once
    collector.close()
    assert sink.closed == 1


def test_enabled_true_wins_over_the_variable(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_ENABLED", "off")
    sink = Sink()
    collector: AsyncCollector[Event] = AsyncCollector(sink, enabled=True)
    collectors.append(collector)
    Emitter(collector).emit_fn("f", 1)

    assert collector.flush(5) and len(sink.batches) == 1


def test_adapters_on_a_disabled_collector_pass_requests_through_untimed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROFILIS_ENABLED", "false")
    collector: AsyncCollector[Event] = AsyncCollector(Sink())

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    wrapped = ProfilisWSGI(app, collector=collector)
    assert wrapped({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda *a: None) == [b"ok"]
    assert collector.health().enqueued == 0  # skipped before any event was built
    collector.close()


# ---------------------------------------------------------------------- web adapters


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def served_routes(wrapped: ProfilisWSGI, collector: AsyncCollector[Event], sink: Sink) -> int:
    for path in ("/health", "/healthz", "/orders/1", "/metrics"):
        wrapped({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda *a: None)
    assert collector.flush(5)
    return sum(len(b) for b in sink.batches)


def test_wsgi_takes_sample_rate_and_excluded_routes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    monkeypatch.setenv("PROFILIS_EXCLUDE_ROUTES", " /health, /metrics ")
    sink = Sink()
    collector: AsyncCollector[Event] = AsyncCollector(sink)
    collectors.append(collector)

    wrapped = ProfilisWSGI(wsgi_app, collector=collector)
    assert wrapped.timing.exclude_routes == ("/health", "/metrics")
    assert served_routes(wrapped, collector, sink) == 1  # only /orders/1

    monkeypatch.setenv("PROFILIS_SAMPLE_RATE", "0")
    assert served_routes(ProfilisWSGI(wsgi_app, collector=collector), collector, sink) == 1
    explicit = ProfilisWSGI(wsgi_app, collector=collector, sample=1.0, exclude_routes=[])
    assert served_routes(explicit, collector, sink) == 1 + 4


@pytest.mark.parametrize(
    ("name", "text"),
    [("PROFILIS_SAMPLE_RATE", "2"), ("PROFILIS_EXCLUDE_ROUTES", "/ok,health")],
)
def test_a_bad_adapter_variable_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
    collectors: list[AsyncCollector[Event]],
    name: str,
    text: str,
) -> None:
    collector: AsyncCollector[Event] = AsyncCollector(Sink())
    collectors.append(collector)
    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        ProfilisWSGI(wsgi_app, collector=collector)


def test_flask_asgi_and_fastapi_share_the_same_defaults(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]]
) -> None:
    flask = pytest.importorskip("flask")
    from profilis.asgi import ProfilisASGI
    from profilis.fastapi.adapter import instrument_fastapi
    from profilis.flask.adapter import ProfilisFlask

    monkeypatch.setenv("PROFILIS_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("PROFILIS_EXCLUDE_ROUTES", "/health")
    collector: AsyncCollector[Event] = AsyncCollector(Sink())
    collectors.append(collector)

    extension = ProfilisFlask(flask.Flask(__name__), collector=collector)
    assert (extension.sample, extension.exclude_routes) == (0.25, ("/health",))
    asgi = ProfilisASGI(lambda *a: None, collector=collector)  # type: ignore[arg-type,return-value]
    assert (asgi.timing.sample, asgi.timing.exclude_routes) == (0.25, ("/health",))

    class Host:
        def __init__(self) -> None:
            self.added: dict[str, Any] = {}

        def add_middleware(self, cls: Any, **kwargs: Any) -> None:
            self.added = kwargs

    host = Host()
    instrument_fastapi(host, collector=collector)
    assert (host.added["sample"], host.added["exclude_routes"]) == (0.25, ("/health",))
    instrument_fastapi(host, collector=collector, sample=1.0, exclude_routes=[])
    assert (host.added["sample"], host.added["exclude_routes"]) == (1.0, ())


# ---------------------------------------------------------------------- SQL and service


def test_sqlalchemy_redaction_follows_profilis_redact(
    monkeypatch: pytest.MonkeyPatch, collectors: list[AsyncCollector[Event]], tmp_path: Path
) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from profilis.sqlalchemy import instrument_engine

    sink = Sink()
    collector: AsyncCollector[Event] = AsyncCollector(sink)
    collectors.append(collector)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("PROFILIS_REDACT", "false")
    instrument_engine(engine, collector=collector)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 'secret'"))
    assert collector.flush(5)
    assert [e["query"] for b in sink.batches for e in b] == ["SELECT 'secret'"]

    assert instrument_engine(engine, collector=collector, redact=True).redact is True
    monkeypatch.setenv("PROFILIS_REDACT", "nope")
    with pytest.raises(ConfigError, match=r"^PROFILIS_REDACT must be"):
        instrument_engine(engine, collector=collector)
    engine.dispose()


def test_exporters_label_the_service_from_profilis_service_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from profilis.exporters.collector import CollectorExporter
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.exporters.otlp import OTLPExporter

    monkeypatch.setenv("PROFILIS_SERVICE_NAME", "shop")
    jsonl = JSONLExporter(tmp_path)
    collector_exporter = CollectorExporter("udp://127.0.0.1:9")
    otlp = OTLPExporter()
    try:
        assert jsonl.service == "shop"
        assert collector_exporter._service == "shop"
        assert otlp.service_name == "shop"
        assert JSONLExporter(tmp_path / "other", service="api").service == "api"
    finally:
        jsonl.close()
        collector_exporter.close()
        otlp.close()

    prometheus_client = pytest.importorskip("prometheus_client")
    from profilis.exporters.prometheus import PrometheusExporter

    assert PrometheusExporter(prometheus_client.CollectorRegistry()).service == "shop"

    monkeypatch.setenv("PROFILIS_SERVICE_NAME", "x" * 256)
    with pytest.raises(ConfigError, match=r"^PROFILIS_SERVICE_NAME must be a non-empty string"):
        JSONLExporter(tmp_path)


def test_nothing_is_read_at_import(tmp_path: Path) -> None:
    # A bad variable cannot break `import profilis...`: nothing reads it before a constructor.
    env = {**os.environ, "PROFILIS_QUEUE_SIZE": "0", "PROFILIS_SAMPLE_RATE": "9"}
    code = (
        "import profilis, profilis.wsgi, profilis.core.emitter, profilis.sqlalchemy,"
        " profilis.exporters.jsonl, profilis.exporters.console; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
