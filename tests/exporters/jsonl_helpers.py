"""Reading what a JSONLExporter left in a directory, the way an independent reader would:
final names only, every line parsed with the standard library, the header first."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

LEFTOVER_SUFFIXES = (".active", ".pending", ".profilis-tmp")


def final_files(directory: Path) -> list[Path]:
    """Final files only: what a reader that follows the naming rules would pick up."""
    return sorted(
        p
        for p in directory.iterdir()
        if not p.name.startswith(".") and p.name.endswith((".jsonl", ".jsonl.gz"))
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(LEFTOVER_SUFFIXES))


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a final file, parsed; raises if any line is not a JSON object."""
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    assert raw.endswith(b"\n"), f"{path.name}: last line not terminated"
    records = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    assert all(isinstance(r, dict) for r in records), path.name
    return records


def read_file(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, events) of one final file; the header must come first, and only there."""
    records = read_lines(path)
    header, events = records[0], records[1:]
    assert header["kind"] == "header", f"{path.name}: no header line"
    assert all(e.get("kind") != "header" for e in events), f"{path.name}: header inside"
    return header, events
