"""The docs cannot drift from the code: configuration tables, links, and the README's commands.

Parts whose source does not exist (yet) are skipped with a message, not passed silently.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from profilis.config import DEFAULTS_VAR, ENV_VARS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_every_profilis_variable_is_documented_and_nothing_else() -> None:
    text = CONFIGURATION.read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(PROFILIS_\w+)`", section, re.MULTILINE))
    known = {*ENV_VARS, DEFAULTS_VAR}
    assert documented == known, (
        f"missing: {sorted(known - documented)}, unknown: {sorted(documented - known)}"
    )


def test_profilisconfig_fields_match_the_crd_schema() -> None:
    generator = _generator()
    table = generator.crd_table()
    if table is None:
        pytest.skip(f"{generator.CRD} does not exist yet")
    assert table in CONFIGURATION.read_text(), "stale: run python docs/generate.py --write"


def test_chart_values_match_values_yaml() -> None:
    generator = _generator()
    table = generator.values_table()
    if table is None:
        pytest.skip(f"{generator.VALUES} or {generator.VALUES_DOC_SCRIPT} does not exist yet")
    assert table in CONFIGURATION.read_text(), "stale: run python docs/generate.py --write"


@pytest.mark.parametrize("command", ["operator", "sidecar"])
def test_command_line_flags_match_the_parsers(command: str) -> None:
    table = getattr(_generator(), f"{command}_flags")()
    assert table is not None, f"profilis_{command} is not installed"
    assert table in CONFIGURATION.read_text(), "stale: run python docs/generate.py --write"
    assert table.count("\n") >= 10  # a row per flag, not an empty table


@pytest.mark.parametrize(
    "page", sorted([REPO / "README.md", *DOCS.glob("*.md")]), ids=lambda p: p.name
)
def test_relative_links_point_at_files_that_exist(page: Path) -> None:
    links = re.findall(r"\]\((?!https?://|#|mailto:)([^)#\s]+)", page.read_text())
    missing = [link for link in links if not (page.parent / link).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_the_readme_commands_are_make_targets() -> None:
    readme = (REPO / "README.md").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    used = set(re.findall(r"^make ([a-z][\w-]*)", readme, re.MULTILINE))
    assert used, "the README shows no make command"
    assert used <= targets, f"the README uses targets the Makefile lacks: {used - targets}"


def test_the_1x_names_the_migration_guide_promises_still_import() -> None:
    import profilis.runtime as runtime
    from profilis.core.async_collector import AsyncCollector
    from profilis.core.emitter import Emitter
    from profilis.decorators.profile import profile_function

    assert Emitter.emit_req is Emitter.emit_http
    assert callable(profile_function) and callable(AsyncCollector)
    for name in ("now_ns", "span_id", "get_trace_id", "get_span_id", "set_trace_id", "use_span"):
        assert hasattr(runtime, name), f"profilis.runtime.{name} is gone"
    text = (DOCS / "migration.md").read_text()
    for name in (
        "AsyncCollector",
        "emit_req",
        "profile_function",
        "ProfilisFlask",
        "JSONLExporter",
    ):
        assert f"`{name}" in text or name in text, f"migration.md does not mention {name}"
