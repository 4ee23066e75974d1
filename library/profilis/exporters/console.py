"""ConsoleExporter: one line per event on a stream (stdout, as in 1.x), for development.

A collector sink. ``pretty=True`` prints aligned columns (time, kind, status, duration, then
the route, function or query); ``pretty=False`` prints JSON lines. Colours mark the event
kind and failures when the stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org); piped output stays plain.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from profilis._validation import check_bool

__all__ = ["ConsoleExporter"]

_RESET: Final = "\x1b[0m"
_RED: Final = "\x1b[31m"
_KIND_COLOURS: Final = {
    "HTTP": "\x1b[36m",
    "FN": "\x1b[35m",
    "DB": "\x1b[33m",
}  # cyan, magenta, yellow


class ConsoleExporter:
    """Prints each batch to ``stream`` (default: ``sys.stdout`` as it is at each batch, like
    Profilis 1.x; pass ``stream=sys.stderr`` to keep stdout for the app's own output).

    ``color=None`` decides by itself: colour on a terminal unless ``NO_COLOR`` is set and
    not empty. ``True``/``False`` force it either way.
    """

    #: The sink's name in the collector's health and the export-error metric.
    name = "console"

    def __init__(
        self, pretty: bool = True, *, stream: TextIO | None = None, color: bool | None = None
    ) -> None:
        self.pretty = check_bool("pretty", pretty)
        if color is not None:
            check_bool("color", color)
        self._stream = stream
        self._color = color
        # Read once here, not per batch: a setting, like the others, fixed at construction.
        self._no_color = bool(os.environ.get("NO_COLOR"))

    @property
    def stream(self) -> TextIO:
        # Resolved late, so a stream redirected after construction (tests, daemons) is used.
        return self._stream if self._stream is not None else sys.stdout

    def uses_color(self) -> bool:
        """Whether the next batch will be coloured."""
        if self._color is not None:
            return self._color
        if self._no_color:
            return False
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Write the batch with one ``write`` (lines of concurrent batches never mix)."""
        stream = self.stream
        color = self.uses_color()
        render = _pretty_line if self.pretty else _json_line
        lines = []
        for event in batch:
            line = render(event)
            if color:
                line = _colorize(line, event)
            lines.append(line)
        stream.write("\n".join(lines) + "\n")
        stream.flush()

    def close(self) -> None:
        """Flush the stream; never close it (it is usually stdout, which is not ours)."""
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def _failed(event: Mapping[str, Any]) -> bool:
    status = event.get("status")
    return bool(event.get("error")) or (isinstance(status, int) and status >= 500)


def _colorize(line: str, event: Mapping[str, Any]) -> str:
    colour = _RED if _failed(event) else _KIND_COLOURS.get(str(event.get("kind")), "")
    return f"{colour}{line}{_RESET}" if colour else line


def _json_line(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


def _what(event: Mapping[str, Any]) -> str:
    kind = event.get("kind")
    if kind in ("HTTP", "REQ"):
        return f"{event.get('method', '')} {event.get('route', '')}".strip()
    if kind == "DB":
        vendor = event.get("db_vendor")
        query = " ".join(str(event.get("query", "")).split())  # one line, whatever the SQL
        return f"[{vendor}] {query}" if vendor else query
    return str(event.get("fn", ""))


def _pretty_line(event: Mapping[str, Any]) -> str:
    """``12:00:01.234 HTTP 500     12.346 ms GET /orders/{id} error=KeyError``.

    The fixed-width columns come first and the route, function or query last, so lines stay
    aligned whatever their length.
    """
    ts_ns = event.get("ts_ns")
    if isinstance(ts_ns, int):
        seconds, nanos = divmod(ts_ns, 1_000_000_000)
        stamp = time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{nanos // 1_000_000:03d}"
    else:
        stamp = "--:--:--.---"
    dur_ns = event.get("dur_ns")
    duration = f"{dur_ns / 1e6:10.3f} ms" if isinstance(dur_ns, (int, float)) else " " * 13
    status = event.get("status")
    parts = [
        stamp,
        f"{event.get('kind', '?')!s:<4}",
        f"{status!s:>3}" if status is not None else "   ",
        duration,
        _what(event),
    ]
    if event.get("rows") is not None:
        parts.append(f"rows={event['rows']}")
    if event.get("error"):
        parts.append(f"error={event['error']}")
    if event.get("trace_id"):
        parts.append(f"trace={event['trace_id']}")
    return " ".join(parts).rstrip()
