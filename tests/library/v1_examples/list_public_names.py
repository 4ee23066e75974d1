"""Prints the public names of every module of an installed Profilis, as JSON.

    python tests/library/v1_examples/list_public_names.py [SITE_PACKAGES_DIR]

Public means: in ``dir(module)``, not starting with ``_``, and defined by Profilis rather
than re-exported from the standard library or a framework (an imported module, or an
object whose ``__module__`` lies outside ``profilis``). Run it against Profilis 1.0 (the
peer venv) and 2.0 to refresh ``V1_PUBLIC_NAMES`` in ``test_v1_names.py``. Modules whose
framework is not installed are listed under ``"unimportable"``.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import sys
import types
from typing import TypeVar


def own_names(module: types.ModuleType) -> dict[str, str | None]:
    """Public name -> None when the module defines or exports it, else the module it was
    imported from (an incidental import, like ``now_ns`` in an adapter)."""
    exported = set(getattr(module, "__all__", ()))
    is_package = hasattr(module, "__path__")
    names: dict[str, str | None] = {}
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            if not value.__name__.startswith("profilis."):
                continue
            # A submodule bound as an attribute by the import system is not an API name.
            if value.__name__ == f"{module.__name__}.{name}":
                continue
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and not origin.startswith("profilis"):
            # typing constructs and re-exported framework classes
            continue
        if (
            isinstance(value, TypeVar)
            or (
                isinstance(value, types.BuiltinFunctionType)
                and not isinstance(value.__self__, types.ModuleType)
            )
            or type(value).__name__
            in {
                "ParamSpec",
                "_Feature",
            }
        ):
            continue  # type variables, `from __future__`, stdlib functions such as random
        if name == "TYPE_CHECKING":
            continue
        if isinstance(value, types.ModuleType):
            home: str | None = value.__name__
        else:
            home = origin if isinstance(origin, str) else None
        if is_package or name in exported or home in (None, module.__name__):
            names[name] = None
        else:
            names[name] = home
    return dict(sorted(names.items()))


def defined_names(info: pkgutil.ModuleInfo) -> dict[str, str | None]:
    """Top-level classes, functions and constants of a module that cannot be imported."""
    spec = info.module_finder.find_spec(info.name.rpartition(".")[2], None)  # type: ignore[call-arg]
    if spec is None or spec.origin is None:
        return {}
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n: None for n in sorted(names) if not n.startswith("_")}


def main() -> None:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    import profilis

    found: dict[str, dict[str, str | None]] = {"profilis": own_names(profilis)}
    unimportable: dict[str, str] = {}
    for info in pkgutil.walk_packages(profilis.__path__, "profilis."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:  # a framework that is not installed: read the source
            unimportable[info.name] = f"{type(exc).__name__}: {exc}"
            found[info.name] = defined_names(info)
            continue
        found[info.name] = own_names(module)
    print(json.dumps({"modules": found, "unimportable": unimportable}, indent=1))


if __name__ == "__main__":
    main()
