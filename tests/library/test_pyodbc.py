"""profilis.pyodbc against a real ODBC stack: unixODBC and the SQLite ODBC driver.

Every statement goes through pyodbc to the driver and a SQLite file; the tests read the DB
events the collector delivered, as a user's sink would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profilis.errors import ConfigError
from profilis.pyodbc.instrumentation import (
    InstrumentedConnection,
    InstrumentedCursor,
    PyODBCConfig,
    instrument_pyodbc_connection,
    instrument_pyodbc_cursor,
)
from profilis.runtime import use_span
from tests.library.db_events import EventLog

pyodbc = pytest.importorskip("pyodbc")
if "SQLite3" not in pyodbc.drivers():
    pytest.skip(
        "the SQLite ODBC driver is not installed (Debian: unixodbc libsqliteodbc)",
        allow_module_level=True,
    )


@pytest.fixture
def log() -> Iterator[EventLog]:
    events = EventLog()
    yield events
    events.close()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Any]:
    connection = pyodbc.connect(f"DRIVER={{SQLite3}};Database={tmp_path / 'shop.db'}")
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    connection.commit()
    yield connection
    connection.close()


def test_the_1x_cursor_example_records_redacted_statements(conn: Any, log: EventLog) -> None:
    # The 1.x docs: configure, instrument a cursor, run statements, commit.
    config = PyODBCConfig(vendor_label="SQL Server", redact_statements=True, preview_len=200)
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter, config)
    cursor.execute("INSERT INTO users (name, email) VALUES (?, ?)", "John", "john@example.com")
    cursor.execute("INSERT INTO users (name, email) VALUES ('Ann', 'ann@example.com')")
    cursor.executemany(
        "INSERT INTO users (name, email) VALUES (?, ?)",
        [("Alice", "alice@example.com"), ("Bob", "bob@example.com")],
    )
    cursor.commit()
    rows = cursor.execute("SELECT name FROM users WHERE id > ? ORDER BY id", 0).fetchall()
    assert [row[0] for row in rows] == ["John", "Ann", "Alice", "Bob"]

    events = log.events()
    assert [e["query"] for e in events] == [
        "INSERT INTO users (name, email) VALUES (?, ?)",
        "INSERT INTO users (name, email) VALUES (?, ?)",
        "INSERT INTO users (name, email) VALUES (?, ?)",
        "SELECT name FROM users WHERE id > ? ORDER BY id",
    ]
    assert {(e["kind"], e["db_vendor"]) for e in events} == {("DB", "SQL Server")}
    assert [e.get("rows") for e in events[:2]] == [1, 1]
    assert all(e["dur_ns"] > 0 and "error" not in e for e in events)
    assert not any("john" in str(e).lower() or "ann@" in str(e) for e in events)


def test_db_vendor_is_the_dbms_the_driver_reports(conn: Any, log: EventLog) -> None:
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter)
    cursor.execute("SELECT 1")
    [event] = log.events()
    assert event["db_vendor"] == "sqlite"
    assert event["query"] == "SELECT ?"


def test_a_pyodbc_cursor_cannot_be_patched_so_a_stand_in_is_returned(
    conn: Any, log: EventLog
) -> None:
    real = conn.cursor()
    cursor = instrument_pyodbc_cursor(real, log.emitter)
    assert isinstance(cursor, InstrumentedCursor)
    assert instrument_pyodbc_cursor(cursor, log.emitter) is cursor  # never timed twice
    # Everything else is the real cursor's: attributes, iteration, settings.
    cursor.arraysize = 7
    assert real.arraysize == 7
    cursor.execute("INSERT INTO users (name) VALUES ('x')")
    assert cursor.rowcount == 1
    assert [tuple(row) for row in cursor.execute("SELECT id, name FROM users")] == [(1, "x")]
    with cursor as entered:
        assert entered is cursor
    assert len(log.events()) == 2


def test_a_failing_statement_raises_unchanged_and_names_its_error(conn: Any, log: EventLog) -> None:
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter)
    with pytest.raises(pyodbc.Error) as raised:
        cursor.execute("SELECT * FROM no_such_table WHERE secret = 'hunter2'")
    [event] = log.events()
    assert event["error"] == type(raised.value).__name__
    assert event["query"] == "SELECT * FROM no_such_table WHERE secret = ?"
    assert "rows" not in event


def test_an_instrumented_connection_times_its_cursors_and_execute(conn: Any, log: EventLog) -> None:
    connection = instrument_pyodbc_connection(conn, log.emitter)
    assert isinstance(connection, InstrumentedConnection)
    assert instrument_pyodbc_connection(connection, log.emitter) is connection
    connection.autocommit = True  # a setting of the real connection
    assert conn.autocommit is True
    connection.execute("INSERT INTO users (name) VALUES (?)", "a")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE users SET name = 'b' WHERE name = 'a'")
    assert [e["query"] for e in log.events()] == [
        "INSERT INTO users (name) VALUES (?)",
        "UPDATE users SET name = ? WHERE name = ?",
    ]


def test_statements_join_the_current_span(conn: Any, log: EventLog) -> None:
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter)
    with use_span() as span:
        cursor.execute("SELECT 1")
    cursor.execute("SELECT 2")
    inside, outside = log.events()
    assert (inside["trace_id"], inside["span_id"]) == (span.trace_id, span.span_id)
    assert "trace_id" not in outside


def test_literals_kept_on_request_and_length_capped(conn: Any, log: EventLog) -> None:
    config = PyODBCConfig(redact_statements=False, preview_len=48)
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter, config)
    cursor.execute("SELECT name FROM users WHERE name = 'visible'   AND id > 5 AND id < 9")
    [event] = log.events()
    assert event["query"] == "SELECT name FROM users WHERE name = 'visible'..."
    assert len(event["query"]) == 48


def test_a_python_cursor_is_patched_in_place_as_in_1x(conn: Any, log: EventLog) -> None:
    class AppCursor:  # a cursor wrapper of the app's own: accepts new attributes
        def __init__(self, real: Any) -> None:
            self.real = real
            self.rowcount = -1

        def execute(self, sql: str, *params: Any) -> Any:
            self.rowcount = self.real.execute(sql, *params).rowcount
            return self

    cursor = AppCursor(conn.cursor())
    instrument_pyodbc_cursor(cursor, log.emitter)  # the return value ignored, as 1.x allowed
    cursor.execute("INSERT INTO users (name) VALUES (?)", "p")
    [event] = log.events()
    assert (event["query"], event["rows"]) == ("INSERT INTO users (name) VALUES (?)", 1)


def test_bad_settings_fail_when_configured() -> None:
    with pytest.raises(ConfigError, match="preview_len"):
        PyODBCConfig(preview_len=0)
    with pytest.raises(ConfigError, match="vendor_label"):
        PyODBCConfig(vendor_label="")
    with pytest.raises(ConfigError, match="redact_statements"):
        PyODBCConfig(redact_statements="yes")  # type: ignore[arg-type]


def test_the_1x_execution_info_type_imports_with_a_deprecation_warning() -> None:
    with pytest.deprecated_call(match=r"DBExecutionInfo is deprecated; use the DB events"):
        from profilis.pyodbc.instrumentation import DBExecutionInfo
    assert DBExecutionInfo(stmt="q", params=None, dur=1, rows=0, exc=None).rows == 0


def test_profilis_redact_decides_when_the_config_leaves_it_out(
    conn: Any, log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROFILIS_REDACT", "false")
    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter, PyODBCConfig())
    cursor.execute("SELECT 'kept'")
    explicit = instrument_pyodbc_cursor(
        conn.cursor(), log.emitter, PyODBCConfig(redact_statements=True)
    )
    explicit.execute("SELECT 'hidden'")
    assert [e["query"] for e in log.events()] == ["SELECT 'kept'", "SELECT ?"]
    monkeypatch.setenv("PROFILIS_REDACT", "maybe")
    with pytest.raises(ConfigError, match="PROFILIS_REDACT"):
        PyODBCConfig()


def test_statements_of_a_sampled_out_request_are_not_recorded(conn: Any, log: EventLog) -> None:
    from profilis.wsgi import ProfilisWSGI

    cursor = instrument_pyodbc_cursor(conn.cursor(), log.emitter)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        cursor.execute(f"SELECT {environ['PATH_INFO'].count('/')}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def get(wsgi: Any, path: str) -> None:
        assert wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda *a: None) == [b"ok"]

    get(ProfilisWSGI(app, emitter=log.emitter, sample=0.0), "/skipped")
    get(ProfilisWSGI(app, emitter=log.emitter, sample=1.0), "/kept/x")
    cursor.execute("SELECT 3")  # outside any request
    assert [(e["kind"], e.get("query")) for e in log.events()] == [
        ("DB", "SELECT ?"),
        ("HTTP", None),
        ("DB", "SELECT ?"),
    ]
    kept, http, outside = log.events()
    assert kept["trace_id"] == http["trace_id"]
    assert "trace_id" not in outside
