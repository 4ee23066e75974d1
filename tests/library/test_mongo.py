"""profilis.mongo: the real PyMongo client publishes its command events to our listener.

No MongoDB server can run here, so PyMongo talks to ``mongo_wire`` (a small stand-in that
speaks the wire protocol on 127.0.0.1): the client, its command monitoring and the events
are PyMongo's own; what a real server would add (query planning, real errors) is not tested.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import pytest

from profilis.errors import ConfigError
from profilis.runtime import use_span
from tests.library.db_events import EventLog

pymongo = pytest.importorskip("pymongo")

from pymongo.monitoring import (  # noqa: E402
    CommandFailedEvent,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from profilis.mongo.instrumentation import (  # noqa: E402
    MongoConfig,
    ProfilisCommandListener,
    describe_command,
)
from tests.library.mongo_wire import mongo_wire_server  # noqa: E402


@pytest.fixture
def log() -> Iterator[EventLog]:
    events = EventLog()
    yield events
    events.close()


@pytest.fixture
def uri() -> Iterator[str]:
    with mongo_wire_server() as address:
        yield address


def test_the_1x_pymongo_example_emits_db_events(uri: str, log: EventLog) -> None:
    # The 1.x docs: a listener with a config, given to MongoClient, then plain PyMongo calls.
    config = MongoConfig(vendor_label="mongodb", preview_len=160, redact_collection=False)
    listener = ProfilisCommandListener(log.emitter, config)
    client = pymongo.MongoClient(uri, event_listeners=[listener])
    try:
        users = client.test_db.users
        users.insert_one({"name": "John", "email": "john@example.com"})
        found = list(users.find({"name": "John", "age": {"$gt": 30}, "tags": ["a", "b"]}))
        assert found == []
        assert users.find_one({"name": "John"})["email"] == "john@example.com"
    finally:
        client.close()

    events = [e for e in log.events() if e["query"].startswith(("insert", "find"))]
    assert [e["query"] for e in events] == [
        "insert test_db.users",
        'find test_db.users {"name": ?, "age": {"$gt": ?}, "tags": [?]}',
        'find test_db.users {"name": ?}',
    ]
    assert {(e["kind"], e["db_vendor"]) for e in events} == {("DB", "mongodb")}
    assert [e["rows"] for e in events] == [1, 0, 1]
    assert all(e["dur_ns"] >= 0 and "error" not in e for e in events)
    assert "john" not in str(events).lower()


def test_a_failed_command_names_the_server_error(uri: str, log: EventLog) -> None:
    client = pymongo.MongoClient(uri, event_listeners=[ProfilisCommandListener(log.emitter)])
    try:
        with pytest.raises(pymongo.errors.OperationFailure):
            client.shop.forbidden.find_one({"secret": "s3cret"})
    finally:
        client.close()
    [event] = [e for e in log.events() if e["query"].startswith("find")]
    assert event["error"] == "Unauthorized"
    assert event["query"] == 'find shop.forbidden {"secret": ?}'


def test_commands_join_the_span_they_run_in(uri: str, log: EventLog) -> None:
    client = pymongo.MongoClient(uri, event_listeners=[ProfilisCommandListener(log.emitter)])
    try:
        client.admin.command("ping")  # connect first: the handshake is not a command event
        with use_span() as span:
            client.shop.orders.delete_one({"id": 5})
    finally:
        client.close()
    [event] = [e for e in log.events() if e["query"].startswith("delete")]
    assert event["query"] == 'delete shop.orders {"id": ?}'
    assert (event["trace_id"], event["span_id"]) == (span.trace_id, span.span_id)


def test_the_async_client_runs_the_listener_in_the_calling_task(uri: str, log: EventLog) -> None:
    async def scenario() -> str:
        client = pymongo.AsyncMongoClient(
            uri, event_listeners=[ProfilisCommandListener(log.emitter)]
        )
        try:
            with use_span() as span:
                await client.shop.users.insert_one({"name": "Ann"})
        finally:
            await client.close()
        return span.trace_id

    trace_id = asyncio.run(scenario())
    [event] = [e for e in log.events() if e["query"].startswith("insert")]
    assert event["trace_id"] == trace_id


def test_events_built_the_way_pymongo_builds_them(log: EventLog) -> None:
    # The public event classes, as PyMongo constructs them, for what the stand-in lacks:
    # a collection name redacted, a client-side failure, a reply without counters.
    listener = ProfilisCommandListener(log.emitter, MongoConfig(redact_collection=True))
    address = ("db.internal", 27017)
    command = {"aggregate": "payments", "pipeline": [{"$match": {"card": "4111"}}], "$db": "shop"}
    listener.started(CommandStartedEvent(command, "shop", 41, address, 41))
    listener.succeeded(
        CommandSucceededEvent(
            datetime.timedelta(microseconds=2500), {"ok": 1}, "aggregate", 41, address, 41
        )
    )
    listener.started(CommandStartedEvent({"find": "x", "$db": "shop"}, "shop", 42, address, 42))
    failure = {"errmsg": "timed out", "errtype": "NetworkTimeout"}
    listener.failed(
        CommandFailedEvent(datetime.timedelta(microseconds=90), failure, "find", 42, address, 42)
    )
    aggregate, find = log.events()
    assert aggregate["query"] == 'aggregate shop.? [{"$match": {"card": ?}}]'
    assert (aggregate["dur_ns"], "rows" in aggregate) == (2_500_000, False)
    assert (find["query"], find["error"], find["dur_ns"]) == (
        "find shop.?",
        "NetworkTimeout",
        90_000,
    )


def test_queries_are_capped_and_settings_checked() -> None:
    long_filter = {f"field_{i}": i for i in range(50)}
    text = describe_command("find", "db", {"find": "c", "filter": long_filter}, max_length=40)
    assert len(text) == 40 and text.endswith("...")
    with pytest.raises(ConfigError, match="preview_len"):
        MongoConfig(preview_len=2)
    with pytest.raises(TypeError, match="Emitter"):
        ProfilisCommandListener(object())  # type: ignore[arg-type]
