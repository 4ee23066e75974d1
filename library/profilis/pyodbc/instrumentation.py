"""pyodbc instrumentation: one DB event per ``execute``/``executemany`` of a cursor.

pyodbc's cursors and connections are C objects whose methods cannot be replaced, so
``instrument_pyodbc_cursor`` and ``instrument_pyodbc_connection`` return a thin stand-in that
times those calls and passes everything else through; an object that does accept new
attributes (a Python cursor, a test double) is instead patched in place, as Profilis 1.x did.
Statements are normalised like SQLAlchemy's (``profilis._sql``); ``db_vendor`` is the DBMS the
ODBC driver reports. pyodbc itself is never imported here: any DB-API cursor will do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final

from profilis._compat import deprecated_getattr
from profilis._db import DbTiming, check_preview_len
from profilis._sql import Quoting, normalise_statement
from profilis._validation import check_bool
from profilis.config import resolve_setting
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError

__all__ = [
    "InstrumentedConnection",
    "InstrumentedCursor",
    "PyODBCConfig",
    "instrument_pyodbc_connection",
    "instrument_pyodbc_cursor",
]

#: ODBC's ``SQLGetInfo`` code for the DBMS name (``pyodbc.SQL_DBMS_NAME``).
_SQL_DBMS_NAME: Final = 17
#: The DBMS names drivers report, as the short names SQLAlchemy uses for the same databases.
_VENDORS: Final = {
    "microsoft sql server": "mssql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "oracle": "oracle",
}
_MYSQL_VENDORS: Final = frozenset({"mysql", "mariadb"})
_UNKNOWN_VENDOR: Final = "odbc"
_VENDOR_MAX: Final = 64
#: Marks an object patched in place, so it is never timed twice.
_MARK: Final = "_profilis_wrapped"


@dataclass(frozen=True)
class PyODBCConfig:
    """How statements are recorded.

    ``vendor_label`` is the events' ``db_vendor``; None (the default) asks the connection for
    its DBMS (``sqlite``, ``mssql``, ``postgresql``...). ``redact_statements=False`` keeps
    literals in recorded statements (know what that exposes); left out, ``PROFILIS_REDACT``
    decides. ``preview_len`` caps their
    length, in characters. Bound parameters are never recorded, so ``redact_params`` has
    nothing left to do; it is kept for 1.x code.
    """

    vendor_label: str | None = None
    redact_statements: bool | None = None
    preview_len: int = 200
    redact_params: bool = True

    def __post_init__(self) -> None:
        # Left out: PROFILIS_REDACT decides, as for SQLAlchemy (true unless set otherwise).
        redact = resolve_setting("redact", self.redact_statements)
        object.__setattr__(self, "redact_statements", check_bool("redact_statements", redact))
        check_preview_len(self.preview_len)
        if self.vendor_label is not None and not (
            isinstance(self.vendor_label, str) and 0 < len(self.vendor_label) <= _VENDOR_MAX
        ):
            accepted = f"a non-empty string of at most {_VENDOR_MAX} characters, or None"
            raise ConfigError("vendor_label", accepted, self.vendor_label)


def instrument_pyodbc_cursor(
    cursor: Any, emitter: Emitter, config: PyODBCConfig | None = None
) -> Any:
    """Time ``cursor.execute``/``executemany``; returns the cursor to use from now on.

    A pyodbc cursor cannot be changed, so what comes back is an ``InstrumentedCursor`` around
    it: keep using the returned object (``cur = instrument_pyodbc_cursor(conn.cursor(), e)``).
    """
    if isinstance(cursor, InstrumentedCursor) or getattr(cursor, _MARK, False):
        return cursor
    timing = _timing(getattr(cursor, "connection", None), emitter, config)
    if _patch(cursor, "execute", timing) and _patch(cursor, "executemany", timing):
        return cursor
    return InstrumentedCursor(cursor, timing)


def instrument_pyodbc_connection(
    connection: Any, emitter: Emitter, config: PyODBCConfig | None = None
) -> Any:
    """Time every statement run through ``connection``; returns the connection to use.

    Its cursors (``cursor()``) and ``connection.execute`` are timed. A pyodbc connection
    cannot be changed, so what comes back is an ``InstrumentedConnection`` around it.
    """
    if isinstance(connection, InstrumentedConnection) or getattr(connection, _MARK, False):
        return connection
    timing = _timing(connection, emitter, config)
    original = connection.cursor
    try:
        connection.cursor = lambda *a, **kw: _cursor(original(*a, **kw), timing)
        setattr(connection, _MARK, True)
    except (AttributeError, TypeError):
        return InstrumentedConnection(connection, timing)
    return connection


class InstrumentedCursor:
    """A cursor whose ``execute``/``executemany`` emit DB events; the rest is the cursor's.

    ``execute`` returns this object where pyodbc returns the cursor, so chained calls
    (``cur.execute(sql).fetchall()``) keep working.
    """

    __slots__ = ("_cursor", "_timing")

    def __init__(self, cursor: Any, timing: DbTiming) -> None:
        object.__setattr__(self, "_cursor", cursor)
        object.__setattr__(self, "_timing", timing)

    def execute(self, sql: str, *params: Any, **kwargs: Any) -> Any:
        cursor = self._cursor
        result = self._timing.call(
            sql, cursor.execute, (sql, *params), kwargs, partial(_rows, cursor)
        )
        return self if result is cursor else result

    def executemany(self, sql: str, *params: Any, **kwargs: Any) -> Any:
        cursor = self._cursor
        result = self._timing.call(
            sql, cursor.executemany, (sql, *params), kwargs, partial(_rows, cursor)
        )
        return self if result is cursor else result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Settings such as ``fast_executemany`` belong to the real cursor.
        setattr(self._cursor, name, value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __next__(self) -> Any:
        return next(self._cursor)

    def __enter__(self) -> InstrumentedCursor:
        self._cursor.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._cursor.__exit__(exc_type, exc, tb)


class InstrumentedConnection:
    """A connection whose cursors and ``execute`` are timed; the rest is the connection's."""

    __slots__ = ("_connection", "_timing")

    def __init__(self, connection: Any, timing: DbTiming) -> None:
        object.__setattr__(self, "_connection", connection)
        object.__setattr__(self, "_timing", timing)

    def cursor(self, *args: Any, **kwargs: Any) -> InstrumentedCursor:
        return InstrumentedCursor(self._connection.cursor(*args, **kwargs), self._timing)

    def execute(self, sql: str, *params: Any) -> Any:
        # pyodbc's Connection.execute is cursor().execute(): the same, timed.
        return self.cursor().execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # ``autocommit``, ``timeout``... belong to the real connection.
        setattr(self._connection, name, value)

    def __enter__(self) -> InstrumentedConnection:
        self._connection.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._connection.__exit__(exc_type, exc, tb)


def _timing(connection: Any, emitter: Emitter, config: PyODBCConfig | None) -> DbTiming:
    cfg = config or PyODBCConfig()
    if not isinstance(cfg, PyODBCConfig):
        raise TypeError(f"config must be a PyODBCConfig, got {type(cfg).__name__}")
    vendor = cfg.vendor_label or _dbms_vendor(connection)
    quoting: Quoting = "mysql" if vendor in _MYSQL_VENDORS else "ansi"
    normalise = partial(
        normalise_statement,
        redact=bool(cfg.redact_statements),
        quoting=quoting,
        max_length=cfg.preview_len,
    )
    return DbTiming(emitter, vendor, normalise)


def _dbms_vendor(connection: Any) -> str:
    """The DBMS behind ``connection``, asked once: ``sqlite``, ``mssql``... or ``odbc``."""
    try:
        name = connection.getinfo(_SQL_DBMS_NAME)
    except Exception:  # not a pyodbc connection, or a driver that does not say
        return _UNKNOWN_VENDOR
    if not isinstance(name, str) or not name.strip():
        return _UNKNOWN_VENDOR
    lowered = name.strip().lower()
    if lowered.startswith("db2"):  # "DB2/LINUXX8664" and the like
        return "db2"
    return _VENDORS.get(lowered, lowered[:_VENDOR_MAX])


def _rows(cursor: Any) -> int | None:
    count = getattr(cursor, "rowcount", None)
    return count if type(count) is int and count >= 0 else None


def _patch(cursor: Any, name: str, timing: DbTiming) -> bool:
    """Replace ``cursor.<name>`` by a timed one; False if the object refuses."""
    original = getattr(cursor, name, None)
    if original is None:
        return True

    def timed(sql: str, *params: Any, **kwargs: Any) -> Any:
        return timing.call(sql, original, (sql, *params), kwargs, partial(_rows, cursor))

    try:
        setattr(cursor, name, timed)
        setattr(cursor, _MARK, True)
    except (AttributeError, TypeError):
        return False
    return True


def _cursor(cursor: Any, timing: DbTiming) -> Any:
    """A new cursor of an instrumented connection, timed the same way."""
    if _patch(cursor, "execute", timing) and _patch(cursor, "executemany", timing):
        return cursor
    return InstrumentedCursor(cursor, timing)


@dataclass
class _DBExecutionInfo:
    """1.x: what its ``DB_META`` events were built from. Profilis 2 emits DB events."""

    stmt: str
    params: Any
    dur: int
    rows: int
    exc: Exception | None


__getattr__ = deprecated_getattr(
    __name__,
    {"DBExecutionInfo": (lambda: _DBExecutionInfo, "the DB events (profilis.schema.DbEvent)")},
)
