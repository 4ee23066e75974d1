"""SQL normalisation: what a statement does, without the data it carries.

String, number and dollar-quoted literals and every DB-API placeholder style become ``?``;
``IN (?, ?, ?)`` and multi-row ``VALUES`` collapse to one item, so a statement keeps one shape
whatever its data; comments (which may hold ids or trace context) are dropped. Used by every
SQL integration (``profilis.sqlalchemy``, ``profilis.pyodbc``); it needs only ``re``, so it
lives outside the packages that import a database library.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["QUERY_MAX_LENGTH", "Quoting", "normalise_statement"]

#: The schema's limit for ``query`` (``profilis.schema``); longer statements are cut to it.
QUERY_MAX_LENGTH: Final = 8192
_ELLIPSIS: Final = "..."

#: How a dialect quotes strings: standard SQL, or MySQL's backslash escapes and "..." strings.
Quoting = Literal["ansi", "mysql"]

# One pass over the statement. At each position the alternatives are tried in order, so a
# quote inside a comment, or a digit inside a name, is never taken for a literal.
_TOKENS: Final = r"""
      (?P<comment> --[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<literal>
          STRINGS
        | \$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z)     # $tag$ PostgreSQL text $tag$
        | (?<![\w.$])(?:0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?!\w)
      )
    | (?P<param> \? | %\([^)]*\)s | %s | (?<![:\w]):(?:[A-Za-z_]\w*|\d+) | \$\d+ )
    | (?P<quoted> IDENTIFIERS )
"""
# Standard SQL doubles a quote to escape it and a backslash is an ordinary character, except
# in PostgreSQL's E'...' strings. An unterminated literal runs to the end: redact too much
# rather than too little.
_ANSI_STRINGS: Final = r"""
          (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)
        | (?<![\w$])[XxBbNn]?'(?:[^']|'')*(?:'|\Z)
"""
_ANSI_IDENTIFIERS: Final = r""" "(?:[^"]|"")*" | `[^`]*` """
# MySQL escapes with backslashes, and reads "..." as a string unless ANSI_QUOTES is on.
_MYSQL_STRINGS: Final = r"""
          (?<![\w$])[XxBbNn]?'(?:[^'\\]|\\.|'')*(?:'|\Z)
        | "(?:[^"\\]|\\.|"")*(?:"|\Z)
"""
_MYSQL_IDENTIFIERS: Final = r" `[^`]*` "
_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    quoting: re.compile(
        _TOKENS.replace("STRINGS", strings).replace("IDENTIFIERS", identifiers), re.S | re.X
    )
    for quoting, strings, identifiers in (
        ("ansi", _ANSI_STRINGS, _ANSI_IDENTIFIERS),
        ("mysql", _MYSQL_STRINGS, _MYSQL_IDENTIFIERS),
    )
}
# After the pass above every value is a "?": one list item stands for any number of them.
_IN_LIST: Final = re.compile(r"\b(IN)\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.I)
_ROW: Final = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_ROWS: Final = re.compile(rf"({_ROW})(?:\s*,\s*{_ROW})+")


def _redact(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "quoted":  # a quoted identifier ("order", `user`): a name, not data
        return match.group()
    return " " if kind == "comment" else "?"


def normalise_statement(
    statement: str,
    *,
    redact: bool = True,
    quoting: Quoting = "ansi",
    max_length: int = QUERY_MAX_LENGTH,
) -> str:
    """Return ``statement`` normalised: literals and parameters as ``?``, blanks collapsed.

    ``redact=False`` only collapses whitespace (literals kept: know what that exposes).
    ``quoting="mysql"`` reads strings the MySQL way. The result is at most ``max_length``
    characters.

    >>> normalise_statement("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'o''brien'")
    'SELECT * FROM t WHERE id IN (?) AND name = ?'
    """
    text = statement
    if redact:
        text = _PATTERNS[quoting].sub(_redact, text)
    text = " ".join(text.split())
    if redact:
        text = _ROWS.sub(r"\1", _IN_LIST.sub(r"\1 (?)", text))
    if len(text) > max_length:
        text = text[: max_length - len(_ELLIPSIS)] + _ELLIPSIS
    return text
