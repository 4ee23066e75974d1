"""The generated parts of docs/configuration.md: ProfilisConfig fields, flags, chart values.

    python docs/generate.py --write   # rewrite the generated tables
    python docs/generate.py --check   # exit 1 if a table is stale (tests/demo/test_docs.py)

The CRD table comes from the openAPIV3Schema of charts/profilis/crds/profilisconfig.yaml
(its descriptions and defaults); the chart table from values.yaml's comments, through
scripts/chart_values_doc.py (the same table as the chart's README); the flag tables from the
argument parsers of profilis-operator and profilis-sidecar (what ``--help`` prints). A part
whose source does not exist yet is left as it is. The PROFILIS_* table is written by hand
and checked against ``profilis.config.ENV_VARS`` by the test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"
CRD = REPO / "charts" / "profilis" / "crds" / "profilisconfig.yaml"
VALUES = REPO / "charts" / "profilis" / "values.yaml"
VALUES_DOC_SCRIPT = REPO / "scripts" / "chart_values_doc.py"
CRD_MARKERS = ("<!-- crd-fields:start (docs/generate.py) -->", "<!-- crd-fields:end -->")
VALUES_MARKERS = ("<!-- chart-values:start (docs/generate.py) -->", "<!-- chart-values:end -->")
OPERATOR_MARKERS = (
    "<!-- operator-flags:start (docs/generate.py) -->",
    "<!-- operator-flags:end -->",
)
SIDECAR_MARKERS = ("<!-- sidecar-flags:start (docs/generate.py) -->", "<!-- sidecar-flags:end -->")


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fields(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Leaf fields of an object schema; requests/limits stay one row (a resources block)."""
    for name, field in (schema.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if field.get("type") == "object" and field.get("properties") and name != "resources":
            yield from _fields(field, where)
        else:
            yield where, field


def _type_of(field: Mapping[str, Any]) -> str:
    if "anyOf" in field:
        return " or ".join(str(option.get("type")) for option in field["anyOf"])
    kind = str(field.get("type", "object"))
    items = field.get("items") or {}
    if kind == "array":
        kind = f"list of {items.get('type', 'object')}"
        if "enum" in items:
            kind += f" ({', '.join(items['enum'])})"
    if "enum" in field:
        kind += f" ({', '.join(field['enum'])})"
    if "minimum" in field or "maximum" in field:
        low = "(" if field.get("exclusiveMinimum") else "["
        kind += f" {low}{field.get('minimum', '')}, {field.get('maximum', '')}]"
    return kind


def crd_table() -> str | None:
    if not CRD.is_file():
        return None
    document = yaml.safe_load(CRD.read_text())
    version = document["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rows = ["| Field (`spec.`) | Type | Default | Description |", "|---|---|---|---|"]
    for path, field in _fields(spec, ""):
        default = f"`{json.dumps(field['default'])}`" if "default" in field else ""
        description = _cell(field.get("description", ""))
        rows.append(f"| `{path}` | {_cell(_type_of(field))} | {default} | {description} |")
    return "\n".join(rows)


def values_table() -> str | None:
    if not (VALUES.is_file() and VALUES_DOC_SCRIPT.is_file()):
        return None
    spec = importlib.util.spec_from_file_location("chart_values_doc", VALUES_DOC_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    table: str = module.render_table(module.parse_values(VALUES.read_text()))
    return table


def flags_table(parser: argparse.ArgumentParser) -> str:
    """One row per option of ``parser``: the flag, its default and its help text."""
    rows = ["| Flag | Default | Meaning |", "|---|---|---|"]
    # argparse has no public listing of its options; _actions is what its own help reads.
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs != 0:
            metavar = action.metavar or (
                "{" + ",".join(map(str, action.choices)) + "}"
                if action.choices
                else action.dest.upper()
            )
            flag += f" {metavar}"
        default = action.default
        shown = "" if default in (None, [], False) else f"`{default}`"
        meaning = _cell(action.help or "").replace("__", "\\_\\_")  # not markdown bold
        rows.append(f"| `{flag}` | {shown} | {meaning} |")
    return "\n".join(rows)


def operator_flags() -> str | None:
    try:
        from profilis_operator.cli import build_parser
    except ImportError:  # the operator extra is not installed
        return None
    return flags_table(build_parser())


def sidecar_flags() -> str | None:
    try:
        from profilis_sidecar.cli import build_parser
    except ImportError:
        return None
    return flags_table(build_parser())


def _replace(text: str, markers: tuple[str, str], table: str | None) -> str:
    if table is None:
        return text
    start, end = text.index(markers[0]), text.index(markers[1])
    return text[: start + len(markers[0])] + "\n" + table + "\n" + text[end:]


def generated(text: str) -> str:
    """``text`` (the doc) with every generated table regenerated from its source."""
    text = _replace(text, CRD_MARKERS, crd_table())
    text = _replace(text, VALUES_MARKERS, values_table())
    text = _replace(text, OPERATOR_MARKERS, operator_flags())
    return _replace(text, SIDECAR_MARKERS, sidecar_flags())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    wanted = generated(current)
    if args.write:
        DOC.write_text(wanted)
        return 0
    if wanted != current:
        print(f"{DOC.relative_to(REPO)} is stale: run python docs/generate.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
