"""``profilis.exporters``: its names resolve lazily, and importing it loads no dependency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import profilis.exporters as exporters


def test_every_public_name_resolves_to_its_module_class() -> None:
    from profilis.exporters.console import ConsoleExporter
    from profilis.exporters.jsonl import JSONLExporter
    from profilis.exporters.otlp import OTLPExporter

    resolved = {name: getattr(exporters, name) for name in exporters.__all__}
    assert resolved == {
        "ConsoleExporter": ConsoleExporter,
        "JSONLExporter": JSONLExporter,
        "OTLPExporter": OTLPExporter,
    }
    assert set(exporters.__all__) <= set(dir(exporters))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchExporter"):
        exporters.NoSuchExporter  # noqa: B018


def test_every_exporter_has_the_sink_contract_and_a_name() -> None:
    for name in exporters.__all__:
        cls = getattr(exporters, name)
        assert callable(cls.__call__) and callable(cls.close)
        assert isinstance(cls.name, str) and cls.name


def test_importing_the_package_and_the_light_exporters_loads_only_the_standard_library() -> None:
    # A fresh interpreter: JSONL and console must work in an app image with nothing else.
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import profilis.exporters, profilis.exporters.console\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    third_party = [
        m
        for m in json.loads(out)
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "profilis"
    ]
    assert third_party == []


def test_jsonl_falls_back_to_the_standard_library_without_orjson(tmp_path: Path) -> None:
    code = (
        "import sys, json, os\n"
        "sys.modules['orjson'] = None  # as if not installed\n"
        "from profilis.exporters.jsonl import JSONLExporter\n"
        f"e = JSONLExporter({str(tmp_path)!r})\n"
        "e([{'kind': 'FN', 'ts_ns': 1, 'dur_ns': 2, 'fn': 'caf\\u00e9'}])\n"
        "e.close()\n"
        f"[name] = os.listdir({str(tmp_path)!r})\n"
        f"print(open(os.path.join({str(tmp_path)!r}, name), encoding='utf-8').read(), end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    header, event = (json.loads(line) for line in out.splitlines())
    assert header["kind"] == "header" and event["fn"] == "café"
