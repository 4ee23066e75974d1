"""SQLAlchemy instrumentation: one DB event per statement, for sync and async engines.

``instrument_engine`` listens to the engine's ``before_cursor_execute``,
``after_cursor_execute`` and ``handle_error`` events (an ``AsyncEngine`` through its
``sync_engine``, whose events run in the caller's context, so DB events join the current
request's trace). Statements are normalised by ``profilis.sqlalchemy.statements`` and
remembered, since an app sends the same few statement strings over and over.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext

if TYPE_CHECKING:
    # Only for annotations: importing sqlalchemy.ext.asyncio needs greenlet, which
    # SQLAlchemy 2.1 no longer installs, and sync-only apps must still get DB events.
    from sqlalchemy.ext.asyncio import AsyncEngine

from profilis._http import resolve_emitter
from profilis._validation import check_bool, check_int
from profilis.config import resolve_setting
from profilis.core.async_collector import AsyncCollector
from profilis.core.emitter import Emitter
from profilis.runtime.clock import now_ns
from profilis.runtime.context import UNSAMPLED, get_current
from profilis.sqlalchemy.statements import QUERY_MAX_LENGTH, Quoting, normalise_statement

__all__ = [
    "EngineInstrumentation",
    "instrument_async_engine",
    "instrument_engine",
    "redact_statement",
    "uninstrument_engine",
]

#: Normalised statements remembered per engine. Apps built on SQLAlchemy send a bounded set
#: of statement strings; raw SQL with inline literals is not bounded, hence the cap.
_STATEMENTS_MAX: Final = 4096
#: Dialects that quote strings the MySQL way (backslash escapes, "..." literals).
_MYSQL_DIALECTS: Final = frozenset({"mysql", "mariadb"})
#: Where the start of a statement is kept between the before and after events.
_START_ATTR: Final = "_profilis_start_ns"

_instrumented: weakref.WeakKeyDictionary[Engine, EngineInstrumentation] = (
    weakref.WeakKeyDictionary()
)


class EngineInstrumentation:
    """The listeners on one engine; ``remove()`` takes them off again."""

    def __init__(self, engine: Engine, emitter: Emitter, *, redact: bool, max_len: int) -> None:
        self.engine = engine
        self.emitter = emitter
        self.redact = redact
        self.max_len = max_len
        #: The ``db_vendor`` of every event: SQLAlchemy's dialect name ("sqlite", "postgresql").
        self.db_vendor: str = engine.dialect.name
        self._quoting: Quoting = "mysql" if self.db_vendor in _MYSQL_DIALECTS else "ansi"
        self._statements: dict[str, str] = {}
        self._emit_db = emitter.emit_db
        # Kept: event.remove needs the very objects that were registered.
        self._listeners = (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        )
        for name, listener in self._listeners:
            event.listen(engine, name, listener)

    def remove(self) -> None:
        """Stop instrumenting the engine. Idempotent."""
        for name, listener in self._listeners:
            if event.contains(self.engine, name, listener):
                event.remove(self.engine, name, listener)
        if _instrumented.get(self.engine) is self:
            del _instrumented[self.engine]

    def query(self, statement: str) -> str:
        """The normalised form of ``statement``, as it appears in events."""
        query = self._statements.get(statement)
        if query is None:
            query = normalise_statement(
                statement,
                redact=self.redact,
                quoting=self._quoting,
                max_length=self.max_len,
            )
            if len(self._statements) >= _STATEMENTS_MAX:
                self._statements.clear()
            self._statements[statement] = query
        return query

    # The listeners run inside the app's database calls: they never raise.
    def _before(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        # A statement of a request that is not recorded gets no start, hence no event.
        if context is not None and get_current() is not UNSAMPLED:
            setattr(context, _START_ATTR, now_ns())

    def _after(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        try:
            start = getattr(context, _START_ATTR, None)
            if start is None:
                return
            dur_ns = now_ns() - start
            # Taken, so an error while fetching the results is not reported a second time.
            setattr(context, _START_ATTR, None)
            rows = cursor.rowcount
            known = rows if type(rows) is int and rows >= 0 else None
            self._emit_db(self.query(statement), dur_ns, known, self.db_vendor, None)
        except Exception:
            pass

    def _error(self, exception_context: ExceptionContext) -> None:
        try:
            context = exception_context.execution_context
            start = getattr(context, _START_ATTR, None)
            statement = exception_context.statement
            if start is None or statement is None:
                return
            setattr(context, _START_ATTR, None)
            error = type(exception_context.original_exception).__name__
            self._emit_db(self.query(statement), now_ns() - start, None, self.db_vendor, error)
        except Exception:
            pass


def instrument_engine(
    engine: Engine | AsyncEngine,
    emitter: Emitter | None = None,
    *,
    collector: AsyncCollector[dict[str, Any]] | None = None,
    redact: bool | None = None,
    max_len: int = QUERY_MAX_LENGTH,
) -> EngineInstrumentation:
    """Emit a DB event for every statement ``engine`` runs (sync ``Engine`` or ``AsyncEngine``).

    Pass ``emitter`` (or ``collector=``). ``redact=False`` keeps literals in the recorded
    statements (left out: ``PROFILIS_REDACT``, else True); ``max_len`` caps their length,
    in characters. Instrumenting an engine again replaces the earlier instrumentation, so
    events are never doubled.
    """
    sync_engine = _sync_engine(engine)
    if not isinstance(sync_engine, Engine):
        raise TypeError(f"engine must be a SQLAlchemy Engine or AsyncEngine, got {engine!r}")
    target = resolve_emitter(emitter, collector)
    redact = check_bool("redact", resolve_setting("redact", redact))
    check_int("max_len", max_len, minimum=16, maximum=QUERY_MAX_LENGTH)
    previous = _instrumented.get(sync_engine)
    if previous is not None:
        previous.remove()
    instrumentation = EngineInstrumentation(sync_engine, target, redact=redact, max_len=max_len)
    _instrumented[sync_engine] = instrumentation
    return instrumentation


#: The Profilis 1.x name; ``instrument_engine`` takes async engines too.
instrument_async_engine = instrument_engine


def uninstrument_engine(engine: Engine | AsyncEngine) -> None:
    """Remove Profilis' listeners from ``engine`` (nothing happens if there are none)."""
    sync_engine = _sync_engine(engine)
    instrumentation = _instrumented.get(sync_engine)
    if instrumentation is not None:
        instrumentation.remove()


def redact_statement(sql: str, *, max_len: int = QUERY_MAX_LENGTH) -> str:
    """The Profilis 1.x helper: ``sql`` with its literals redacted (``normalise_statement``)."""
    return normalise_statement(sql, max_length=max_len)


def _sync_engine(engine: Engine | AsyncEngine) -> Any:
    """The ``Engine`` that runs the statements: an ``AsyncEngine`` wraps one."""
    return getattr(engine, "sync_engine", engine)
