"""Sinks written for Profilis 1.x: v1-shaped events on request, 1.x collector names, and the
1.0 Flask quickstart (a sink keeping ``kind == "REQ"`` for ``StatsStore.record``) on 2.0."""

from __future__ import annotations

import json
import logging
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profilis.compat import to_v1_event, v1_events
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.core.stats import StatsStore
from profilis.runtime import use_span

Event = dict[str, Any]


@pytest.fixture
def collectors() -> Iterator[list[AsyncCollector[Event]]]:
    made: list[AsyncCollector[Event]] = []
    yield made
    for collector in made:
        collector.close(timeout=2.0)


def emit_one_of_each(emitter: Emitter) -> None:
    with use_span():
        emitter.emit_http("/users/{id}", 500, 2_000_000, method="POST", error="KeyError")
        emitter.emit_fn("shop.load", 1_000, error="ValueError")
        emitter.emit_fn("shop.save", 1_000)
        emitter.emit_db("SELECT ?", 3_000, db_vendor="sqlite")
        emitter.emit_db("UPDATE t SET a = ?", 3_000, rows=2)


def shapes(events: list[Event]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each event's kind, with its keys in order and the type name of each value."""
    return [(e["kind"], [(k, type(v).__name__) for k, v in e.items()]) for e in events]


def test_v1_events_gives_every_sink_the_events_1x_built(
    collectors: list[AsyncCollector[Event]],
) -> None:
    received: list[Event] = []
    collector: AsyncCollector[Event] = AsyncCollector(received.extend, v1_events=True)
    collectors.append(collector)
    emit_one_of_each(Emitter(collector))
    assert collector.flush(5)

    req, failed_fn, fn, db, db_rows = received
    assert req["kind"] == "REQ" and (req["route"], req["status"]) == ("/users/{id}", 500)
    assert list(req) == ["ts_ns", "trace_id", "span_id", "kind", "route", "status", "dur_ns"]
    assert (failed_fn["error"], fn["error"]) == (True, False)  # a bool again, not a type name
    assert (db["rows"], db["db_vendor"], db_rows["rows"]) == (-1, "sqlite", 2)
    assert "db_vendor" not in db_rows
    assert all(isinstance(e["ts_ns"], int) and len(e["trace_id"]) == 32 for e in received)


def test_the_shapes_are_exactly_those_of_profilis_1_0(
    collectors: list[AsyncCollector[Event]],
    peer_python: Path,
) -> None:
    # Profilis 1.0 itself builds the same three events; keys, order and types must match.
    peer = textwrap.dedent(
        """
        import json
        from profilis.core.async_collector import AsyncCollector
        from profilis.core.emitter import Emitter
        from profilis.runtime import span_id, use_span
        got = []
        collector = AsyncCollector(got.extend, flush_interval=0.01)
        emitter = Emitter(collector)
        with use_span(trace_id=span_id() + span_id(), span_id=span_id()):
            emitter.emit_req("/users/{id}", 500, 2_000_000)
            emitter.emit_fn("shop.load", 1_000, error=True)
            emitter.emit_fn("shop.save", 1_000)
            emitter.emit_db("SELECT ?", 3_000, rows=-1, db_vendor="sqlite")
            emitter.emit_db("UPDATE t SET a = ?", 3_000, rows=2)
        collector.close(timeout=5)
        print(json.dumps([[e["kind"], [[k, type(v).__name__] for k, v in e.items()]] for e in got]))
        """
    )
    done = subprocess.run(
        [str(peer_python), "-c", peer], capture_output=True, text=True, timeout=60, check=True
    )
    theirs = [(kind, [tuple(pair) for pair in pairs]) for kind, pairs in json.loads(done.stdout)]

    received: list[Event] = []
    collector: AsyncCollector[Event] = AsyncCollector(received.extend, v1_events=True)
    collectors.append(collector)
    emit_one_of_each(Emitter(collector))
    assert collector.flush(5)

    assert shapes(received) == theirs


def test_the_processor_leaves_its_input_alone_and_passes_other_kinds() -> None:
    event: Event = {"kind": "HTTP", "ts_ns": 1, "dur_ns": 2, "route": "/", "status": 200}
    other: Event = {"kind": "REQ_META", "route": "/", "bytes_out": 3}

    assert v1_events([event, other])[1] == other
    assert event["kind"] == "HTTP"  # a new dict was built
    assert to_v1_event({**event, "kind": "REQ"})["kind"] == "REQ"  # v1 in, v1 out


def test_without_v1_events_nothing_is_converted_and_processors_see_v2_first(
    collectors: list[AsyncCollector[Event]],
) -> None:
    seen_by_processor: list[str] = []

    def note(batch: list[Event]) -> list[Event]:
        seen_by_processor.extend(e["kind"] for e in batch)
        return batch

    plain: list[Event] = []
    v1: list[Event] = []
    collectors.append(AsyncCollector(plain.extend, v1_events=False))
    collectors.append(AsyncCollector(v1.extend, processors=[note], v1_events=True))
    for collector in collectors:
        Emitter(collector).emit_http("/", 200, 1)
        assert collector.flush(5)

    assert [e["kind"] for e in plain] == ["HTTP"]
    assert seen_by_processor == ["HTTP"] and [e["kind"] for e in v1] == ["REQ"]


def test_a_stats_store_fed_v1_events_counts_only_real_failures(
    collectors: list[AsyncCollector[Event]],
) -> None:
    stats = StatsStore()
    collector: AsyncCollector[Event] = AsyncCollector(stats, v1_events=True)
    collectors.append(collector)
    emit_one_of_each(Emitter(collector))
    assert collector.flush(5)

    functions = {row["fn"]: row for row in stats.snapshot()["functions"]}
    assert (functions["shop.load"]["errors"], functions["shop.save"]["errors"]) == (1, 0)


# ---------------------------------------------------------------------- 1.x collector API


class CallableList(list[Event]):
    """A 1.x pattern: a list that is its own sink (tests, notebooks)."""

    def __call__(self, batch: list[Event]) -> None:
        self.extend(batch)


def test_a_callable_list_subclass_is_one_sink(collectors: list[AsyncCollector[Event]]) -> None:
    sink = CallableList()
    collector: AsyncCollector[Event] = AsyncCollector(sink)
    collectors.append(collector)
    Emitter(collector).emit_fn("f", 1)
    assert collector.flush(5)

    assert [e["fn"] for e in sink] == ["f"]
    assert [s.name for s in collector.health().sinks] == ["CallableList"]


def test_the_1x_counters_still_answer_and_name_their_replacements(
    collectors: list[AsyncCollector[Event]],
) -> None:
    collector: AsyncCollector[Event] = AsyncCollector(lambda batch: None, queue_size=2)
    collectors.append(collector)
    collector.close()  # nothing leaves the queue now: the third event evicts the first
    for n in range(3):
        collector.enqueue({"n": n})

    with pytest.deprecated_call(match=r"AsyncCollector\.processed .* AsyncCollector\.exported"):
        assert collector.processed == collector.exported == 0
    with pytest.deprecated_call(match=r"dropped_oldest .*\.dropped\['queue'\]"):
        assert collector.dropped_oldest == 1
    with pytest.deprecated_call(match=r"flush_errors .*\.export_errors"):
        assert collector.flush_errors == 0


def test_max_consecutive_sink_failures_is_accepted_but_no_longer_switches_a_sink_off(
    collectors: list[AsyncCollector[Event]],
) -> None:
    calls: list[int] = []

    def flaky(batch: list[Event]) -> None:
        calls.append(len(batch))
        if len(calls) <= 3:
            raise ConnectionError("down")

    with pytest.deprecated_call(match="retries a failing sink with backoff"):
        collector: AsyncCollector[Event] = AsyncCollector(
            flaky,
            max_consecutive_sink_failures=1,
            v1_events=False,
            retry_initial_backoff_s=0.001,
            retry_max_backoff_s=0.001,
        )
    collectors.append(collector)
    collector.enqueue({"kind": "FN"})

    assert collector.flush(5)  # 1.x would have dropped it for good after one failure
    assert collector.exported == 1 and collector.export_errors == 3


def test_a_1x_sink_with_only_finalize_is_finalized_at_close() -> None:
    class Finalized(list[Event]):
        finalized = 0

        def __call__(self, batch: list[Event]) -> None:
            self.extend(batch)

        def finalize(self) -> None:
            self.finalized += 1

    sink = Finalized()
    collector: AsyncCollector[Event] = AsyncCollector(sink)
    collector.enqueue({"kind": "FN"})
    collector.close(timeout=5)

    assert (len(sink), sink.finalized) == (1, 1)


# ---------------------------------------------------------------------- the 1.0 quickstart

flask = pytest.importorskip("flask")


def quickstart(tmp_path: Path, **collector_args: Any) -> tuple[Any, AsyncCollector[Event]]:
    """The Profilis 1.0 README's Flask quickstart, as a 1.x user wrote it."""
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.flask.adapter import ProfilisFlask
    from profilis.flask.ui import make_ui_blueprint

    stats = StatsStore()
    jsonl = JSONLExporter(dir=str(tmp_path), rotate_bytes=1024 * 1024, rotate_secs=3600)

    def sink(batch: list[Event]) -> None:
        jsonl(batch)
        for ev in batch:
            if ev.get("kind") == "REQ":
                status = int(ev.get("status", 0) or 0)
                stats.record(int(ev.get("dur_ns", 0) or 0), error=status >= 500)

    collector: AsyncCollector[Event] = AsyncCollector(
        sink, queue_size=2048, batch_max=128, flush_interval=0.1, **collector_args
    )
    app = flask.Flask(__name__)
    ProfilisFlask(app, collector=collector, exclude_routes=["/health", "/_profilis"], sample=1.0)
    app.register_blueprint(make_ui_blueprint(stats, ui_prefix="/_profilis"))

    @app.route("/api/users")
    def get_users() -> dict[str, list[str]]:
        return {"users": ["alice", "bob"]}

    return app, collector


def dashboard_requests(client: Any) -> int:
    metrics = client.get("/_profilis/metrics.json").get_json()
    return int(metrics["totals"]["http"]["count"])


def test_the_1_0_flask_quickstart_fills_the_dashboard_with_v1_events(
    tmp_path: Path, collectors: list[AsyncCollector[Event]]
) -> None:
    app, collector = quickstart(tmp_path, v1_events=True)
    collectors.append(collector)
    client = app.test_client()

    # StatsStore.record() still works, and says what replaces it (from the writer thread).
    with pytest.deprecated_call(match=r"StatsStore\.record\(\)"):
        for _ in range(5):
            assert client.get("/api/users").status_code == 200
        assert collector.flush(5)

    assert dashboard_requests(client) == 5
    assert collector.health().export_errors == 0


def test_without_v1_events_the_quickstart_is_told_what_to_do(
    tmp_path: Path,
    collectors: list[AsyncCollector[Event]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="profilis.collector"):
        app, collector = quickstart(tmp_path)
    collectors.append(collector)
    client = app.test_client()
    for _ in range(5):
        client.get("/api/users")
    assert collector.flush(5)

    # Its filter keeps nothing: the events are kind "HTTP" now. The empty dashboard is no
    # longer silent: the log says so at start-up, and what to pass.
    assert dashboard_requests(client) == 0
    [notice] = [r.getMessage() for r in caplog.records if r.name == "profilis.collector"]
    assert "sink quickstart.<locals>.sink gets Profilis 2 events" in notice
    assert 'kind "HTTP" where 1.x had "REQ"' in notice
    assert "pass v1_events=True" in notice and "v1_events=False" in notice


def test_profilis_own_sinks_and_a_stated_choice_get_no_notice(
    caplog: pytest.LogCaptureFixture, collectors: list[AsyncCollector[Event]]
) -> None:
    def sink(batch: list[Event]) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="profilis.collector"):
        collectors.append(AsyncCollector(StatsStore()))
        collectors.append(AsyncCollector(sink, v1_events=False))
        collectors.append(AsyncCollector(sink, v1_events=True))

    assert caplog.records == []
