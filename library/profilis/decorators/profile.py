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
from profilis.runtime.clock import now_ns
from profilis.runtime.context import RawContext, get_current, reset_current, set_current
from profilis.runtime.ids import new_span_id

__all__ = ["profile", "profile_function"]

P = ParamSpec("P")
R = TypeVar("R")


def _child_context() -> RawContext:
    parent = get_current()
    if parent is None:
        # A root span outside any request: its trace id is derived from its random 64-bit
        # span id, which saves generating a second id on every un-traced call.
        span = new_span_id()
        return (span + span, span, None, 1, None)
    return (parent[0], new_span_id(), parent[1], parent[3], parent[4])


def profile(
    emitter: Emitter, *, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Return a decorator that emits an FN event for every call of the function.

    ``name`` defaults to the function's ``module.qualname``. Coroutine functions are timed
    until they finish, not until they return a coroutine.
    """
    if not isinstance(emitter, Emitter):
        raise TypeError(f"profile() needs an Emitter, got {type(emitter).__name__}")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{func.__module__}.{getattr(func, '__qualname__', repr(func))}"
        emit_fn = emitter.emit_fn

        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[object]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> object:
                token = set_current(_child_context())
                error = None
                start = now_ns()
                try:
                    return await async_func(*args, **kwargs)
                except BaseException as exc:
                    error = type(exc).__name__
                    raise
                finally:
                    emit_fn(label, now_ns() - start, error)
                    reset_current(token)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = set_current(_child_context())
            error = None
            start = now_ns()
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                # Emitted before the span is reset, so the event carries this call's ids.
                emit_fn(label, now_ns() - start, error)
                reset_current(token)

        return wrapper

    return decorate


#: The Profilis 1.x name: ``@profile_function(emitter)``.
profile_function = profile
