"""``wrap_method``: one wrapper per method however often the bootstrap runs, or a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from profilis.agent._patching import UnsupportedVersionError, is_wrapped, wrap_method


def counting(calls: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any) -> Any:
            calls.append("wrapper")
            return original(self, *args)

        return wrapper

    return make


def test_the_wrapper_replaces_the_method_once() -> None:
    class App:
        def handle(self, x: int) -> int:
            """Handles."""
            return x * 2

    calls: list[str] = []

    assert wrap_method(App, "handle", counting(calls)) is True
    assert wrap_method(App, "handle", counting(calls)) is False

    assert App().handle(4) == 8
    assert calls == ["wrapper"]
    assert is_wrapped(App.handle)
    assert App.handle.__name__ == "handle" and App.handle.__doc__ == "Handles."


def test_a_method_only_inherited_is_not_patched_on_the_subclass() -> None:
    class Base:
        def handle(self) -> None:
            pass

    class App(Base):
        pass

    with pytest.raises(UnsupportedVersionError, match=r"App\.handle not found"):
        wrap_method(App, "handle", counting([]))
    assert not is_wrapped(Base.handle)
