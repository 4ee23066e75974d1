"""Post-import hooks: callbacks run once a module is imported, in any order, never failing it.

Each test imports modules written to its own temp directory under fresh names, with a hooks
object of its own, taken off ``sys.meta_path`` again afterwards.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from profilis.agent._hooks import PostImportHooks


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for this test's modules; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def errors() -> list[tuple[str, Exception]]:
    return []


@pytest.fixture
def hooks(errors: list[tuple[str, Exception]]) -> Iterator[PostImportHooks]:
    hooks = PostImportHooks(on_error=lambda name, exc: errors.append((name, exc)))
    hooks.install()
    yield hooks
    hooks.uninstall()


def write_module(directory: Path, body: str = "VALUE = 42\n") -> str:
    name = f"mod_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(body)
    return name


def test_callback_runs_after_the_module_ran_and_before_the_importer_gets_it(
    modules: Path, hooks: PostImportHooks
) -> None:
    name = write_module(modules)
    seen: list[int] = []
    hooks.register(name, lambda module: seen.append(module.VALUE))

    module = importlib.import_module(name)

    assert seen == [42]
    # The module keeps its own loader: tracebacks and importlib.resources use it.
    assert isinstance(module.__loader__, importlib.machinery.SourceFileLoader)
    assert module.__spec__ is not None
    assert module.__spec__.loader is module.__loader__


def test_a_module_imported_before_registration_gets_the_callback_at_once(
    modules: Path, hooks: PostImportHooks
) -> None:
    name = write_module(modules)
    module = importlib.import_module(name)
    seen: list[ModuleType] = []

    hooks.register(name, seen.append)

    assert seen == [module]


def test_a_submodule_imported_by_its_package_is_seen(modules: Path, hooks: PostImportHooks) -> None:
    package = f"pkg_{uuid.uuid4().hex}"
    (modules / package).mkdir()
    (modules / package / "__init__.py").write_text("from . import app\n")
    (modules / package / "app.py").write_text("class App:\n    pass\n")
    seen: list[str] = []
    hooks.register(f"{package}.app", lambda module: seen.append(module.App.__name__))

    importlib.import_module(package)

    assert seen == ["App"]


def test_a_failing_callback_is_reported_and_the_import_succeeds(
    modules: Path, hooks: PostImportHooks, errors: list[tuple[str, Exception]]
) -> None:
    name = write_module(modules)
    later: list[str] = []

    def broken(module: ModuleType) -> None:
        raise AttributeError("no such class")

    hooks.register(name, broken)
    hooks.register(name, lambda module: later.append(module.__name__))

    module = importlib.import_module(name)

    assert module.VALUE == 42
    assert [(n, str(e)) for n, e in errors] == [(name, "no such class")]
    assert later == [name]  # one failing patch does not stop the others


def test_other_modules_are_left_to_the_usual_finders(modules: Path, hooks: PostImportHooks) -> None:
    watched, other = write_module(modules), write_module(modules)
    seen: list[str] = []
    hooks.register(watched, lambda module: seen.append(module.__name__))

    importlib.import_module(other)

    assert seen == []
    assert hooks.find_spec(other, None) is None


def test_a_module_imported_again_is_handled_again(modules: Path, hooks: PostImportHooks) -> None:
    name = write_module(modules)
    seen: list[str] = []
    hooks.register(name, lambda module: seen.append(module.__name__))
    importlib.import_module(name)
    del sys.modules[name]

    importlib.import_module(name)

    assert seen == [name, name]


def test_a_module_that_fails_to_import_runs_no_callback(
    modules: Path, hooks: PostImportHooks
) -> None:
    name = write_module(modules, "raise ImportError('needs a dependency')\n")
    seen: list[str] = []
    hooks.register(name, lambda module: seen.append(module.__name__))

    with pytest.raises(ImportError, match="needs a dependency"):
        importlib.import_module(name)

    assert seen == []
    assert name not in sys.modules
