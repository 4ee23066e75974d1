"""What the database integrations outside SQLAlchemy share (``pyodbc``, ``neo4j``, ``mongo``).

``DbTiming`` times one call into a database client and emits its DB event, the statement
normalised once per distinct string (an app sends the same few statements over and over, as
``profilis.sqlalchemy`` also assumes). ``check_preview_len`` turns a 1.x ``preview_len`` into
the most characters a recorded query may have. Standard library only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from profilis._sql import QUERY_MAX_LENGTH
from profilis._validation import check_int
from profilis.core.emitter import Emitter
from profilis.runtime.clock import now_ns
from profilis.runtime.context import UNSAMPLED, get_current

__all__ = ["DbTiming", "StatementMemo", "check_preview_len"]

R = TypeVar("R")
#: Rows a finished call reports, when the client knows (None: unknown).
RowCount = Callable[[], "int | None"]

#: Normalised statements remembered per instrumentation. Parameterised statements form a
#: small set; statements with inline literals do not, hence the cap.
_STATEMENTS_MAX: Final = 4096
#: Longer statements (bulk inserts with inline data) are normalised every time, not kept:
#: the memo must not hold megabytes of an app's data.
_MEMO_KEY_MAX: Final = 4096
#: Shorter than this, a query says too little to be worth an event.
_PREVIEW_MIN: Final = 16


def check_preview_len(value: object) -> int:
    """``preview_len`` checked once: the most characters a recorded query may have."""
    return check_int("preview_len", value, minimum=_PREVIEW_MIN, maximum=QUERY_MAX_LENGTH)


class StatementMemo:
    """``memo(statement)`` is ``normalise(statement)``, computed once per distinct statement."""

    __slots__ = ("_normalise", "_seen")

    def __init__(self, normalise: Callable[[str], str]) -> None:
        self._normalise = normalise
        self._seen: dict[str, str] = {}

    def __call__(self, statement: str) -> str:
        if len(statement) > _MEMO_KEY_MAX:
            return self._normalise(statement)
        query = self._seen.get(statement)
        if query is None:
            query = self._normalise(statement)
            if len(self._seen) >= _STATEMENTS_MAX:
                self._seen.clear()
            self._seen[statement] = query
        return query


class DbTiming:
    """Emits one DB event per timed call: ``query`` normalised, ``db_vendor`` fixed.

    The call's exception, if any, is re-raised untouched after its event (``error`` is the
    type name); a failure of ours is swallowed: instrumentation never breaks the app.
    """

    __slots__ = ("_emit_db", "db_vendor", "query")

    def __init__(self, emitter: Emitter, db_vendor: str, normalise: Callable[[str], str]) -> None:
        if not isinstance(emitter, Emitter):
            raise TypeError(f"emitter must be a profilis Emitter, got {type(emitter).__name__}")
        self._emit_db = emitter.emit_db
        self.db_vendor = db_vendor
        #: ``query(statement)``: the statement as events show it.
        self.query = StatementMemo(normalise)

    def call(
        self,
        statement: object,
        function: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        rows: RowCount | None = None,
    ) -> R:
        start = now_ns()
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            self.emit(statement, now_ns() - start, None, type(exc).__name__)
            raise
        self.emit(statement, now_ns() - start, rows, None)
        return result

    async def call_async(
        self,
        statement: object,
        function: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> R:
        start = now_ns()
        try:
            result = await function(*args, **kwargs)
        except Exception as exc:
            self.emit(statement, now_ns() - start, None, type(exc).__name__)
            raise
        self.emit(statement, now_ns() - start, None, None)
        return result

    def emit(
        self, statement: object, dur_ns: int, rows: RowCount | int | None, error: str | None
    ) -> None:
        try:
            if get_current() is UNSAMPLED:  # not recorded: skip the normalising too
                return
            count = rows() if callable(rows) else rows
            self._emit_db(
                self.query(statement if isinstance(statement, str) else str(statement)),
                dur_ns,
                count if type(count) is int and count >= 0 else None,
                self.db_vendor,
                error,
            )
        except Exception:
            pass
