"""SQLAlchemy instrumentation against real SQLite files (sync, and async via aiosqlite)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from profilis import ConfigError, use_span
from profilis.sqlalchemy import (
    QUERY_MAX_LENGTH,
    instrument_async_engine,
    instrument_engine,
    normalise_statement,
    redact_statement,
    uninstrument_engine,
)

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'test.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def queries(events: list[dict[str, object]]) -> list[object]:
    return [e["query"] for e in events]


def test_literals_in_real_statements_are_redacted(log, engine):
    instrument_engine(engine, log.emitter)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'o''hara')"))
        conn.execute(text("SELECT name FROM users WHERE id IN (1, 2, 3) AND name <> 'x'")).all()
        conn.execute(text("UPDATE users SET name = 'grace' WHERE id = 2"))
    assert queries(log.events("DB")) == [
        "INSERT INTO users (id, name) VALUES (?, ?)",
        "SELECT name FROM users WHERE id IN (?) AND name <> ?",
        "UPDATE users SET name = ? WHERE id = ?",
    ]


def test_parameters_are_placeholders_and_rows_are_counted(log, engine):
    instrument_engine(engine, collector=log.collector)
    with engine.begin() as conn:
        conn.execute(insert(users), [{"name": "ada"}, {"name": "grace"}, {"name": "barbara"}])
        assert len(conn.execute(select(users).where(users.c.id.in_([1, 2]))).all()) == 2
        conn.execute(text("DELETE FROM users WHERE name = :name"), {"name": "ada"})
    inserted, selected, deleted = log.events("DB")
    assert inserted["query"] == "INSERT INTO users (name) VALUES (?)"
    assert inserted["rows"] == 3
    assert selected["query"] == ("SELECT users.id, users.name FROM users WHERE users.id IN (?)")
    assert "rows" not in selected  # SQLite does not know before the rows are fetched
    assert (deleted["query"], deleted["rows"]) == ("DELETE FROM users WHERE name = ?", 1)
    assert {e["db_vendor"] for e in (inserted, selected, deleted)} == {"sqlite"}
    assert all(e["dur_ns"] > 0 for e in (inserted, selected, deleted))


def test_a_failing_statement_raises_as_before_and_is_recorded(log, engine):
    instrument_engine(engine, log.emitter)
    with pytest.raises(OperationalError, match="no such table"), engine.connect() as conn:
        conn.execute(text("SELECT * FROM missing WHERE id = 5"))
    event = log.one("DB")
    assert (event["query"], event["error"]) == (
        "SELECT * FROM missing WHERE id = ?",
        "OperationalError",
    )


def test_redaction_can_be_turned_off(log, engine):
    instrument_engine(engine, log.emitter, redact=False)
    with engine.connect() as conn:
        conn.execute(text("SELECT   name FROM users\n WHERE id = 42"))
    assert log.one("DB")["query"] == "SELECT name FROM users WHERE id = 42"


def test_statements_inside_a_span_carry_its_trace(log, engine):
    instrument_engine(engine, log.emitter)
    with use_span() as span, engine.connect() as conn:
        conn.execute(select(users)).all()
    event = log.one("DB")
    assert (event["trace_id"], event["span_id"]) == (span.trace_id, span.span_id)


def test_instrumenting_twice_replaces_and_uninstrument_removes(log, engine):
    instrument_engine(engine, log.emitter)
    instrument_engine(engine, log.emitter)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    uninstrument_engine(engine)
    uninstrument_engine(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT 2"))
    assert queries(log.events("DB")) == ["SELECT ?"]


def test_settings_are_checked(log, engine):
    with pytest.raises(ConfigError, match=r"^max_len must be"):
        instrument_engine(engine, log.emitter, max_len=3)
    with pytest.raises(ConfigError, match=r"^redact must be"):
        instrument_engine(engine, log.emitter, redact="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Engine or AsyncEngine"):
        instrument_engine("sqlite://", log.emitter)  # type: ignore[arg-type]


def test_an_async_engine_is_instrumented_in_the_callers_trace(log, tmp_path):
    async def run() -> tuple[str, str]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        instrument_async_engine(engine, log.emitter)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            with use_span() as span:
                async with engine.begin() as conn:
                    await conn.execute(text("INSERT INTO users (name) VALUES ('ada')"))
                    result = await conn.execute(text("SELECT name FROM users WHERE id = 1"))
                    assert result.scalar_one() == "ada"
        finally:
            await engine.dispose()
        return span.trace_id, span.span_id

    trace_id, span_id = asyncio.run(run())
    traced = [e for e in log.events("DB") if e.get("trace_id") == trace_id]
    assert queries(traced) == [
        "INSERT INTO users (name) VALUES (?)",
        "SELECT name FROM users WHERE id = ?",
    ]
    assert {e["span_id"] for e in traced} == {span_id}
    assert traced[0]["rows"] == 1


NORMALISED = [
    ("SELECT * FROM t WHERE a = 'it''s' AND b = 3.5e2", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT x FROM t1 WHERE c2 = 0x1F -- 42\n AND d = -7",
     "SELECT x FROM t1 WHERE c2 = ? AND d = -?"),
    ("INSERT INTO t VALUES (%s, %s), (%s, %s)", "INSERT INTO t VALUES (?, ?)"),
    ("SELECT a::int FROM t WHERE x = :name AND y = %(p)s AND z = $1 AND w = :1",
     "SELECT a::int FROM t WHERE x = ? AND y = ? AND z = ? AND w = ?"),
    ('SELECT "order", `key` FROM "user" /* secret 9 */ WHERE n IN (:a, :b)',
     'SELECT "order", `key` FROM "user" WHERE n IN (?)'),
    ("SELECT $$raw 'text'$$, $q$x$q$, E'\\'', X'ff', 'C:\\'", "SELECT ?, ?, ?, ?, ?"),
    ("SELECT 'never closed", "SELECT ?"),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "normalised"), NORMALISED)
def test_normalised_statements(statement, normalised):
    assert normalise_statement(statement) == normalised


def test_mysql_strings_are_read_the_mysql_way():
    statement = r"""SELECT `name` FROM t WHERE a = "bob" AND b = 'it\'s' AND c = 1"""
    assert normalise_statement(statement, quoting="mysql") == (
        "SELECT `name` FROM t WHERE a = ? AND b = ? AND c = ?"
    )


def test_long_statements_are_cut_to_the_schema_limit():
    statement = "SELECT " + ", ".join(f"column_{n}" for n in range(2000))
    assert len(normalise_statement(statement)) == QUERY_MAX_LENGTH
    assert redact_statement(statement, max_len=100).endswith("...")


@given(
    value=st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    number=st.integers(min_value=0) | st.floats(min_value=0, allow_nan=False, allow_infinity=False),
)
def test_no_literal_survives(value, number):
    quoted = value.replace("'", "''")
    statement = f"SELECT id FROM t WHERE name = '{quoted}' AND score > {number!r}"
    assert normalise_statement(statement) == "SELECT id FROM t WHERE name = ? AND score > ?"


@given(st.text(max_size=200))
def test_any_text_gives_a_bounded_single_line(statement):
    result = normalise_statement(statement, max_length=64)
    assert len(result) <= 64
    assert "\n" not in result
