"""profilis.neo4j: the real ``neo4j`` driver, sync and async, against a Bolt stand-in.

No Neo4j server can run here, so the driver talks Bolt 4.4 to ``bolt_wire`` on 127.0.0.1:
sessions, transactions, ``execute_query`` and the driver's errors are the driver's own; what a
real server adds (planning, real data, routing clusters) is not tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from profilis.errors import ConfigError
from profilis.neo4j import normalise_cypher
from profilis.neo4j.instrumentation import (
    Neo4jConfig,
    instrument_neo4j_module,
    instrument_neo4j_session,
)
from profilis.runtime import use_span
from tests.library.bolt_wire import BoltServer, bolt_server
from tests.library.db_events import EventLog

neo4j = pytest.importorskip("neo4j")

AUTH = ("neo4j", "password")


@pytest.fixture
def log() -> Iterator[EventLog]:
    events = EventLog()
    yield events
    events.close()


@pytest.fixture
def server() -> Iterator[tuple[str, BoltServer]]:
    with bolt_server() as running:
        yield running


@pytest.fixture
def restore_neo4j() -> Iterator[None]:
    """``instrument_neo4j_module`` changes the module's factories: put them back after."""
    saved = {
        name: getattr(neo4j, name).__dict__["driver"]
        for name in ("GraphDatabase", "AsyncGraphDatabase")
    }
    yield
    for name, factory in saved.items():
        getattr(neo4j, name).driver = factory


def queries(log: EventLog) -> list[str]:
    return [event["query"] for event in log.events()]


def test_the_1x_module_example_times_every_query(
    server: tuple[str, BoltServer], log: EventLog, restore_neo4j: None
) -> None:
    uri, _ = server
    # The 1.x docs: instrument the module, create a driver, run queries in a session.
    config = Neo4jConfig(vendor_label="neo4j", preview_len=200, redact_cypher=True)
    instrument_neo4j_module(neo4j, log.emitter, config)
    driver = neo4j.GraphDatabase.driver(uri, auth=AUTH)
    try:
        with driver.session() as session:
            session.run("CREATE (p:Person {name: $name, age: $age}) RETURN p", name="Alice", age=30)
            result = session.run("MATCH (p:Person) WHERE p.age > 25 AND p.name <> 'Bob' RETURN p")
            assert [record["n"] for record in result] == [1]
        records = driver.execute_query("MATCH (p:Person {name: 'Eve'}) RETURN p").records
        assert len(records) == 1
    finally:
        driver.close()
    events = log.events()
    assert [e["query"] for e in events] == [
        "CREATE (p:Person {name: $name, age: $age}) RETURN p",
        "MATCH (p:Person) WHERE p.age > ? AND p.name <> ? RETURN p",
        "MATCH (p:Person {name: ?}) RETURN p",
    ]
    assert {(e["kind"], e["db_vendor"]) for e in events} == {("DB", "neo4j")}
    assert all(e["dur_ns"] > 0 and "error" not in e for e in events)


def test_explicit_and_managed_transactions_are_timed(
    server: tuple[str, BoltServer], log: EventLog
) -> None:
    uri, received = server
    driver = neo4j.GraphDatabase.driver(uri, auth=AUTH)
    try:
        with driver.session() as session:
            instrument_neo4j_session(session, log.emitter)
            with session.begin_transaction() as tx:
                tx.run("CREATE (:Person {name: 'Alice'})")
                tx.run("CREATE (:Person {name: 'Bob'})")
                tx.commit()

            def count_people(tx: Any, minimum: int) -> int:
                return len(list(tx.run("MATCH (p:Person) WHERE p.age > 7 RETURN p")))

            assert session.execute_read(count_people, 0) == 1
    finally:
        driver.close()
    assert queries(log) == [
        "CREATE (:Person {name: ?})",
        "CREATE (:Person {name: ?})",
        "MATCH (p:Person) WHERE p.age > ? RETURN p",
    ]
    assert len(received.received) == 3  # the driver really sent them


def test_a_failing_query_raises_the_driver_error_and_names_it(
    server: tuple[str, BoltServer], log: EventLog
) -> None:
    uri, _ = server
    driver = neo4j.GraphDatabase.driver(uri, auth=AUTH)
    try:
        with driver.session() as session:
            instrument_neo4j_session(session, log.emitter)
            with pytest.raises(neo4j.exceptions.CypherSyntaxError) as raised:
                session.run("FAIL WITH 'secret'").consume()
    finally:
        driver.close()
    [event] = log.events()
    assert event["query"] == "FAIL WITH ?"
    assert event["error"] == type(raised.value).__name__


def test_queries_join_the_current_span_and_are_timed_once(
    server: tuple[str, BoltServer], log: EventLog
) -> None:
    uri, _ = server
    driver = neo4j.GraphDatabase.driver(uri, auth=AUTH)
    try:
        with driver.session() as session:
            assert instrument_neo4j_session(session, log.emitter) is session
            instrument_neo4j_session(session, log.emitter)  # again: no second event
            with use_span() as span:
                session.run("RETURN 1").consume()
    finally:
        driver.close()
    [event] = log.events()
    assert (event["trace_id"], event["span_id"]) == (span.trace_id, span.span_id)


def test_the_async_driver_is_instrumented_too(
    server: tuple[str, BoltServer], log: EventLog, restore_neo4j: None
) -> None:
    uri, _ = server
    instrument_neo4j_module(neo4j, log.emitter, Neo4jConfig(redact_cypher=False))

    async def scenario() -> str:
        driver = neo4j.AsyncGraphDatabase.driver(uri, auth=AUTH)
        try:
            async with driver.session() as session:
                with use_span() as span:
                    result = await session.run("MATCH (p) WHERE p.age > 30 RETURN p")
                    assert [record["n"] async for record in result] == [1]

                async def work(tx: Any) -> None:
                    await (await tx.run("MERGE (c:City {name: 'Oslo'})")).consume()

                await session.execute_write(work)
            await driver.execute_query("RETURN 2")
        finally:
            await driver.close()
        return span.trace_id

    trace_id = asyncio.run(scenario())
    events = log.events()
    assert [e["query"] for e in events] == [
        "MATCH (p) WHERE p.age > 30 RETURN p",  # redact_cypher=False keeps literals
        "MERGE (c:City {name: 'Oslo'})",
        "RETURN 2",
    ]
    assert events[0]["trace_id"] == trace_id


def test_cypher_normalisation_keeps_names_and_drops_data() -> None:
    query = """
        // find friends
        MATCH (a:Person {name: "Ann \\"A\\""})-[:KNOWS*1..3]->(b:`Odd Label`)
        WHERE b.score >= 4.5e2 AND b.tags IN ['x', 'y', 'z'] AND b.id = $id /* hint */
        RETURN b LIMIT 10
    """
    assert normalise_cypher(query) == (
        "MATCH (a:Person {name: ?})-[:KNOWS*1..3]->(b:`Odd Label`) "
        "WHERE b.score >= ? AND b.tags IN [?] AND b.id = $id RETURN b LIMIT ?"
    )
    assert normalise_cypher("RETURN 'unterminated") == "RETURN ?"
    assert len(normalise_cypher("RETURN " + "x" * 500, max_length=50)) == 50


def test_bad_settings_fail_when_configured() -> None:
    with pytest.raises(ConfigError, match="preview_len"):
        Neo4jConfig(preview_len=-1)
    with pytest.raises(ConfigError, match="redact_cypher"):
        Neo4jConfig(redact_cypher="yes")  # type: ignore[arg-type]


def test_profilis_redact_decides_when_the_config_leaves_it_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROFILIS_REDACT", "false")
    assert Neo4jConfig().redact_cypher is False
    assert Neo4jConfig(redact_cypher=True).redact_cypher is True
    monkeypatch.delenv("PROFILIS_REDACT")
    assert Neo4jConfig().redact_cypher is True
