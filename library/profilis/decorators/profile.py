"""``@profile``: time a sync or async function and emit one FN event per call.

Each call runs in a child span of the current one (so DB and FN events inside it link to it),
records the exception type when it raises, and re-raises unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from profilis.core.emitter import Emitter
from profilis.runtime.clock import now_ns, wall_ns
from profilis.runtime.context import (
    UNSAMPLED,
    RawContext,
    get_current,
    reset_current,
    set_current,
)
from profilis.runtime.ids import pool_pop, refill_ids

__all__ = ["profile", "profile_function"]

P = ParamSpec("P")
R = TypeVar("R")


def _child_context(parent: RawContext | None) -> RawContext:
    """A new span under ``parent`` (or a new root); the sync wrapper inlines the same steps."""
    try:
        span = pool_pop()
    except IndexError:
        span = refill_ids()
    if parent is None:
        # A root span outside any request: its trace id is derived from its random 64-bit
        # span id, which saves generating a second id on every un-traced call.
        return (span + span, span, None, 1, None)
    return (parent[0], span, parent[1], parent[3], parent[4])


def profile(
    emitter: Emitter, *, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Return a decorator that emits an FN event for every call of the function.

    ``name`` defaults to the function's ``module.qualname``. Coroutine functions are timed
    until they finish, not until they return a coroutine. Calls made while a request that is
    not recorded is handled (sampled out, or an excluded route) run untimed, with no span.
    """
    if not isinstance(emitter, Emitter):
        raise TypeError(f"profile() needs an Emitter, got {type(emitter).__name__}")

    buf, capacity, wake_at, wake, enqueue = emitter.collector.hot_path()

    def record(label: str, ctx: RawContext, start: int, end: int, error: str | None) -> None:
        # The FN event, built here rather than through Emitter.emit_fn: this call already
        # holds the span context, and skipping a call and a ContextVar read is most of the
        # decorator's budget. Same keys and queueing as the emitter (and the sync wrapper).
        try:
            dur_ns = end - start
            event = {
                "kind": "FN",
                "ts_ns": wall_ns() - dur_ns,
                "dur_ns": dur_ns,
                "fn": label,
                "trace_id": ctx[0],
                "span_id": ctx[1],
            }
            if ctx[2] is not None:
                event["parent_span_id"] = ctx[2]
            if error is not None:
                event["error"] = error
            depth = len(buf)
            if depth < capacity:
                buf.append(event)
                if depth == wake_at:
                    wake()
            else:
                enqueue(event)
        except Exception:  # instrumentation must never break the app
            pass

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{func.__module__}.{getattr(func, '__qualname__', repr(func))}"

        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[object]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> object:
                parent = get_current()
                if parent is UNSAMPLED:
                    return await async_func(*args, **kwargs)
                ctx = _child_context(parent)
                token = set_current(ctx)
                start = now_ns()
                try:
                    result = await async_func(*args, **kwargs)
                except BaseException as exc:
                    record(label, ctx, start, now_ns(), type(exc).__name__)
                    reset_current(token)
                    raise
                record(label, ctx, start, now_ns(), None)
                reset_current(token)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            # _child_context() and record(), written out for the success path: every
            # bytecode here is paid on each call of the app's most frequent functions.
            parent = get_current()
            if parent is None:
                try:
                    span = pool_pop()
                except IndexError:
                    span = refill_ids()
                trace = span + span
                ctx: RawContext = (trace, span, None, 1, None)
            elif parent is UNSAMPLED:
                return func(*args, **kwargs)
            else:
                try:
                    span = pool_pop()
                except IndexError:
                    span = refill_ids()
                trace = parent[0]
                ctx = (trace, span, parent[1], parent[3], parent[4])
            token = set_current(ctx)
            start = now_ns()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                end = now_ns()
                reset_current(token)
                record(label, ctx, start, end, type(exc).__name__)
                raise
            end = now_ns()
            reset_current(token)
            try:
                if parent is None:
                    event = {
                        "kind": "FN",
                        "ts_ns": wall_ns() - end + start,
                        "dur_ns": end - start,
                        "fn": label,
                        "trace_id": trace,
                        "span_id": span,
                    }
                else:
                    event = {
                        "kind": "FN",
                        "ts_ns": wall_ns() - end + start,
                        "dur_ns": end - start,
                        "fn": label,
                        "trace_id": trace,
                        "span_id": span,
                        "parent_span_id": parent[1],
                    }
                depth = len(buf)
                if depth < capacity:
                    buf.append(event)
                    if depth == wake_at:
                        wake()
                else:
                    enqueue(event)
            except Exception:  # instrumentation must never break the app
                pass
            return result

        return wrapper

    return decorate


#: The Profilis 1.x name: ``@profile_function(emitter)``.
profile_function = profile
