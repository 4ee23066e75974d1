"""SQLAlchemy integration: ``instrument_engine(engine, emitter)`` times every statement.

Importing this package imports SQLAlchemy; the normaliser in ``.statements`` needs nothing
beyond the standard library.
"""

from profilis.sqlalchemy.instrumentation import (
    EngineInstrumentation,
    instrument_async_engine,
    instrument_engine,
    redact_statement,
    uninstrument_engine,
)
from profilis.sqlalchemy.statements import QUERY_MAX_LENGTH, normalise_statement

__all__ = [
    "QUERY_MAX_LENGTH",
    "EngineInstrumentation",
    "instrument_async_engine",
    "instrument_engine",
    "normalise_statement",
    "redact_statement",
    "uninstrument_engine",
]
