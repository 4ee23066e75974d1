"""ConsoleExporter: readable lines, JSON lines, colour on a real terminal only, NO_COLOR."""

from __future__ import annotations

import io
import json
import os
import pty
import sys
from collections.abc import Iterator
from typing import TextIO

import pytest

from profilis.core.async_collector import AsyncCollector
from profilis.errors import ConfigError
from profilis.exporters.console import ConsoleExporter

ESC = "\x1b["
HTTP = {
    "kind": "HTTP",
    "ts_ns": 1_700_000_000_123_000_000,
    "dur_ns": 12_345_678,
    "method": "GET",
    "route": "/orders/{id}",
    "status": 200,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}
FN = {"kind": "FN", "ts_ns": 1_700_000_000_000_000_000, "dur_ns": 1_500, "fn": "shop.load"}
DB = {
    "kind": "DB",
    "ts_ns": 1_700_000_000_000_000_000,
    "dur_ns": 532_000,
    "query": "SELECT id\n  FROM orders WHERE id = ?",
    "db_vendor": "sqlite",
    "rows": 1,
}
FAILED = {**HTTP, "status": 500, "error": "KeyError"}


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A real pseudo-terminal: (the stream the exporter writes to, the reading end)."""
    controller, child = pty.openpty()
    stream = os.fdopen(child, "w", encoding="utf-8")
    try:
        yield stream, controller
    finally:
        stream.close()
        os.close(controller)


def read_terminal(controller: int) -> str:
    # The terminal turns "\n" into "\r\n" on the way out; undo that for the assertions.
    return os.read(controller, 65536).decode().replace("\r\n", "\n")


def test_pretty_lines_show_kind_what_status_and_milliseconds() -> None:
    out = io.StringIO()
    ConsoleExporter(pretty=True, stream=out)([HTTP, FN, DB, FAILED])

    http, fn, db, failed = out.getvalue().splitlines()
    assert http.split()[1:] == [
        "HTTP",
        "200",
        "12.346",
        "ms",
        "GET",
        "/orders/{id}",
        "trace=4bf92f3577b34da6a3ce929d0e0e4736",
    ]
    assert fn.split()[1:] == ["FN", "0.002", "ms", "shop.load"]
    # One line, whatever the SQL's own line breaks.
    assert db.endswith("0.532 ms [sqlite] SELECT id FROM orders WHERE id = ? rows=1")
    assert " 500 " in failed and failed.endswith(f"error=KeyError trace={HTTP['trace_id']}")
    # Aligned: the duration column starts at the same place on every line.
    assert len({line.index(" ms") for line in (http, fn, db, failed)}) == 1


def test_json_lines_round_trip() -> None:
    out = io.StringIO()
    ConsoleExporter(pretty=False, stream=out)([HTTP, DB])

    assert [json.loads(line) for line in out.getvalue().splitlines()] == [HTTP, DB]


def test_piped_output_is_plain() -> None:
    out = io.StringIO()  # not a terminal, like a pipe or a file
    exporter = ConsoleExporter(stream=out)
    exporter([HTTP, FAILED])

    assert not exporter.uses_color()
    assert ESC not in out.getvalue()


@pytest.mark.parametrize("pretty", [True, False])
def test_a_terminal_gets_a_colour_per_kind_and_red_for_failures(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch, pretty: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream, controller = terminal
    exporter = ConsoleExporter(pretty=pretty, stream=stream)
    exporter([HTTP, FN, DB, FAILED])

    http, fn, db, failed = read_terminal(controller).splitlines()
    assert exporter.uses_color()
    assert http.startswith(f"{ESC}36m") and fn.startswith(f"{ESC}35m")
    assert db.startswith(f"{ESC}33m") and failed.startswith(f"{ESC}31m")
    assert all(line.endswith(f"{ESC}0m") for line in (http, fn, db, failed))


def test_no_color_turns_colour_off_on_a_terminal(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream, controller = terminal
    ConsoleExporter(stream=stream)([HTTP])

    assert ESC not in read_terminal(controller)


def test_empty_no_color_does_not_count(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "")  # the convention: only a non-empty value disables
    stream, controller = terminal
    ConsoleExporter(stream=stream)([HTTP])

    assert ESC in read_terminal(controller)


def test_colour_can_be_forced_either_way(terminal: tuple[TextIO, int]) -> None:
    stream, controller = terminal
    ConsoleExporter(stream=stream, color=False)([HTTP])
    assert ESC not in read_terminal(controller)

    out = io.StringIO()
    ConsoleExporter(stream=out, color=True)([HTTP])
    assert out.getvalue().startswith(f"{ESC}36m")


def test_default_stream_is_stdout_at_write_time_as_in_1x(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exporter = ConsoleExporter(pretty=False)
    exporter([FN])  # capsys swapped sys.stdout after import: the exporter follows it

    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == FN


def test_stream_keeps_stdout_free_for_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleExporter(pretty=False, stream=sys.stderr)([FN])

    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err) == FN


def test_unknown_fields_and_kinds_do_not_break_a_line() -> None:
    out = io.StringIO()
    ConsoleExporter(stream=out)([{"kind": "REQ", "route": "/v1"}, {"odd": object()}])

    first, second = out.getvalue().splitlines()
    assert "REQ" in first and "/v1" in first
    assert second.split()[0] == "--:--:--.---"


def test_it_works_as_a_collector_sink() -> None:
    out = io.StringIO()
    collector: AsyncCollector[dict[str, object]] = AsyncCollector(ConsoleExporter(stream=out))
    for _ in range(10):
        collector.enqueue(FN)
    collector.close(timeout=5)

    assert len(out.getvalue().splitlines()) == 10
    assert collector.health().exported == 10


def test_bad_settings_name_themselves() -> None:
    with pytest.raises(ConfigError, match="pretty"):
        ConsoleExporter(pretty="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="color"):
        ConsoleExporter(color=1)  # type: ignore[arg-type]
