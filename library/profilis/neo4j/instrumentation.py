"""Neo4j instrumentation: one DB event per Cypher query, for sync and async drivers.

``instrument_neo4j_session`` wraps the ``run`` of one session and of the transactions it
opens (explicit ones and those handed to ``execute_read``/``execute_write`` functions);
``instrument_neo4j_module`` makes every driver created afterwards hand out such sessions and
times its ``execute_query``. Only the given objects change: no driver class is patched. An
event's duration is that of ``run``: the query sent and the server's first answer, not the
streaming of records the app reads afterwards. Queries are normalised by ``.cypher``.
The driver itself is never imported here: the module is passed in.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, Final

from profilis._db import DbTiming, check_preview_len
from profilis._validation import check_bool
from profilis.config import resolve_setting
from profilis.core.emitter import Emitter
from profilis.errors import ConfigError
from profilis.neo4j.cypher import normalise_cypher

__all__ = ["Neo4jConfig", "instrument_neo4j_module", "instrument_neo4j_session"]

#: Marks a session or transaction already instrumented (the 1.x attribute name).
_MARK: Final = "_profilis_wrapped"
#: Where a patched factory keeps the one it replaced, so instrumenting again replaces ours.
_ORIGINAL: Final = "_profilis_original"
_VENDOR_MAX: Final = 64


class Neo4jConfig:
    """How queries are recorded: ``vendor_label`` is the events' ``db_vendor``,
    ``preview_len`` the most characters of a query; ``redact_cypher=False`` keeps literals
    (know what that exposes; left out, ``PROFILIS_REDACT`` decides). Parameters are never
    recorded."""

    def __init__(
        self,
        *,
        vendor_label: str = "neo4j",
        preview_len: int = 200,
        redact_cypher: bool | None = None,
    ) -> None:
        if not isinstance(vendor_label, str) or not 0 < len(vendor_label) <= _VENDOR_MAX:
            accepted = f"a non-empty string of at most {_VENDOR_MAX} characters"
            raise ConfigError("vendor_label", accepted, vendor_label)
        self.vendor_label = vendor_label
        self.preview_len = check_preview_len(preview_len)
        # Left out: PROFILIS_REDACT decides, as for SQL (true unless set otherwise).
        redact = resolve_setting("redact", redact_cypher)
        self.redact_cypher = check_bool("redact_cypher", redact)


def instrument_neo4j_session(
    session: Any, emitter: Emitter, config: Neo4jConfig | None = None
) -> Any:
    """Emit a DB event for every query run through ``session`` (sync or async) and the
    transactions it opens. Returns ``session``; instrumenting twice changes nothing."""
    _instrument(session, _timing(emitter, config))
    return session


def instrument_neo4j_module(
    module: Any, emitter: Emitter, config: Neo4jConfig | None = None
) -> None:
    """Instrument every driver that ``module.GraphDatabase.driver`` (and
    ``AsyncGraphDatabase.driver``) creates from now on: ``instrument_neo4j_module(neo4j, e)``.

    Calling it again replaces the earlier emitter and settings; drivers made before keep theirs.
    """
    timing = _timing(emitter, config)
    for factory_name in ("GraphDatabase", "AsyncGraphDatabase"):
        factory = getattr(module, factory_name, None)
        create = getattr(factory, "driver", None)
        if factory is None or create is None:
            continue
        original = getattr(create, _ORIGINAL, create)
        factory.driver = staticmethod(_driver_factory(original, timing))


def _timing(emitter: Emitter, config: Neo4jConfig | None) -> DbTiming:
    cfg = config or Neo4jConfig()
    if not isinstance(cfg, Neo4jConfig):
        raise TypeError(f"config must be a Neo4jConfig, got {type(cfg).__name__}")
    normalise = functools.partial(
        normalise_cypher, redact=cfg.redact_cypher, max_length=cfg.preview_len
    )
    return DbTiming(emitter, cfg.vendor_label, normalise)


def _driver_factory(original: Callable[..., Any], timing: DbTiming) -> Callable[..., Any]:
    @functools.wraps(original)
    def driver(*args: Any, **kwargs: Any) -> Any:
        created = original(*args, **kwargs)
        # An unexpected driver shape: it works, untimed.
        with contextlib.suppress(Exception):
            _instrument_driver(created, timing)
        return created

    setattr(driver, _ORIGINAL, original)
    return driver


def _instrument_driver(driver: Any, timing: DbTiming) -> None:
    open_session = driver.session

    @functools.wraps(open_session)
    def session(*args: Any, **kwargs: Any) -> Any:
        return _instrument(open_session(*args, **kwargs), timing)

    driver.session = session
    execute_query = getattr(driver, "execute_query", None)
    if execute_query is not None:
        driver.execute_query = _timed(execute_query, timing)


def _instrument(target: Any, timing: DbTiming) -> Any:
    """Time ``target.run`` and instrument the transactions ``target`` opens."""
    if getattr(target, _MARK, False):
        return target
    run = getattr(target, "run", None)
    if run is not None:
        target.run = _timed(run, timing)
    begin = getattr(target, "begin_transaction", None)
    if begin is not None:
        target.begin_transaction = _returning_instrumented(begin, timing)
    for name in ("execute_read", "execute_write"):
        execute = getattr(target, name, None)
        if execute is not None:
            setattr(target, name, _with_instrumented_tx(execute, timing))
    setattr(target, _MARK, True)
    return target


def _query_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    query = args[0] if args else kwargs.get("query", kwargs.get("query_", ""))
    # A neo4j.Query carries its text (and a timeout, metadata) as attributes.
    return getattr(query, "text", query)


def _timed(run: Callable[..., Any], timing: DbTiming) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(run):

        @functools.wraps(run)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await timing.call_async(_query_text(args, kwargs), run, args, kwargs)

        return run_async

    @functools.wraps(run)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        return timing.call(_query_text(args, kwargs), run, args, kwargs)

    return run_sync


def _returning_instrumented(begin: Callable[..., Any], timing: DbTiming) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(begin):

        @functools.wraps(begin)
        async def begin_async(*args: Any, **kwargs: Any) -> Any:
            return _instrument(await begin(*args, **kwargs), timing)

        return begin_async

    @functools.wraps(begin)
    def begin_sync(*args: Any, **kwargs: Any) -> Any:
        return _instrument(begin(*args, **kwargs), timing)

    return begin_sync


def _with_instrumented_tx(execute: Callable[..., Any], timing: DbTiming) -> Callable[..., Any]:
    """``execute_read(work, ...)``: ``work`` gets an instrumented transaction."""

    def wrap(work: Callable[..., Any]) -> Callable[..., Any]:
        # functools.wraps keeps the ``metadata``/``timeout`` that @unit_of_work sets.
        if inspect.iscoroutinefunction(work):

            @functools.wraps(work)
            async def work_async(tx: Any, *args: Any, **kwargs: Any) -> Any:
                return await work(_instrument(tx, timing), *args, **kwargs)

            return work_async

        @functools.wraps(work)
        def work_sync(tx: Any, *args: Any, **kwargs: Any) -> Any:
            return work(_instrument(tx, timing), *args, **kwargs)

        return work_sync

    @functools.wraps(execute)
    def execute_with(work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return execute(wrap(work) if callable(work) else work, *args, **kwargs)

    return execute_with
