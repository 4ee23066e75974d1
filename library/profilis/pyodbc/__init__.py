"""pyodbc integration: ``instrument_pyodbc_connection(conn, emitter)`` times every statement.

pyodbc itself is not imported: the instrumentation works on any DB-API connection or cursor.
"""

from profilis.pyodbc.instrumentation import (
    InstrumentedConnection,
    InstrumentedCursor,
    PyODBCConfig,
    instrument_pyodbc_connection,
    instrument_pyodbc_cursor,
)

__all__ = [
    "InstrumentedConnection",
    "InstrumentedCursor",
    "PyODBCConfig",
    "instrument_pyodbc_connection",
    "instrument_pyodbc_cursor",
]
