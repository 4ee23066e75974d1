"""Post-import hooks: run a callback once a named module has been imported, whenever that is.

``PostImportHooks`` is a ``sys.meta_path`` finder that finds nothing itself. For a watched
name it asks the finders after it for the module's spec and wraps that spec's loader, so the
callbacks run right after the module's code has run and before the importer gets the module.
A module that is already imported when its hook is registered gets its callbacks at once, so
the order in which the app and the agent import things does not matter. The bootstrap
(``profilis.agent.bootstrap``) registers the framework patches of ``_frameworks`` and
``_servers`` here. A failing callback is reported to ``on_error`` and never fails the import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # importlib.abc would pull importlib.resources into every process start
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

__all__ = ["Callback", "PostImportHooks"]

#: Runs with the freshly imported module.
Callback = Callable[[ModuleType], None]


class PostImportHooks:
    """Calls ``callback(module)`` for each registered module name, once it is imported.

    A meta path finder by protocol (``find_spec``), not by inheritance, for the reason above.

    ``on_error(module_name, exception)`` hears about callbacks that raised. Callbacks stay
    registered, so a module imported again (after removal from ``sys.modules``) is handled
    again: the patches they apply must be idempotent.
    """

    def __init__(self, on_error: Callable[[str, Exception], None]) -> None:
        self._callbacks: dict[str, list[Callback]] = {}
        self._on_error = on_error

    def register(self, module_name: str, callback: Callback) -> None:
        """Run ``callback`` when ``module_name`` is imported, or now if it already is."""
        self._callbacks.setdefault(module_name, []).append(callback)
        module = sys.modules.get(module_name)
        if module is not None:
            self._run(module_name, module, (callback,))

    def install(self) -> None:
        """Put the finder first on ``sys.meta_path`` (once)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._callbacks)

    # ------------------------------------------------------------------ the finder protocol
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in self._callbacks:
            return None  # the common case: one dict lookup per import
        spec = self._spec_from_later_finders(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # nothing we could wrap (a namespace package, say): leave it alone
        # A loader by protocol too: the import system only calls the methods it defines.
        spec.loader = cast("Loader", _HookedLoader(spec.loader, fullname, self))
        return spec

    def _spec_from_later_finders(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> ModuleSpec | None:
        # The finders before us have declined already; asking them again would cost time
        # and could recurse into us.
        finders = list(sys.meta_path)
        start = finders.index(self) + 1 if self in finders else 0
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _loaded(self, module_name: str, module: ModuleType) -> None:
        self._run(module_name, module, tuple(self._callbacks.get(module_name, ())))

    def _run(self, module_name: str, module: ModuleType, callbacks: Sequence[Callback]) -> None:
        for callback in callbacks:
            try:
                callback(module)
            except Exception as exc:  # a patch that fails must not fail the app's import
                self._on_error(module_name, exc)


class _HookedLoader:
    """Wraps a module's own loader: runs the module, then the hooks' callbacks.

    Once the module runs it gets its own loader back (``__loader__`` and ``__spec__.loader``),
    so nothing that inspects it later (tracebacks, ``importlib.resources``) sees this one.
    """

    def __init__(self, loader: Loader, module_name: str, hooks: PostImportHooks) -> None:
        self._loader = loader
        self._module_name = module_name
        self._hooks = hooks

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        loader = self._loader
        module.__loader__ = loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = loader
        loader.exec_module(module)
        self._hooks._loaded(self._module_name, module)

    def __getattr__(self, name: str) -> Any:
        # Anything else a caller asks of a loader (get_code, get_source, is_package...).
        return getattr(self._loader, name)
