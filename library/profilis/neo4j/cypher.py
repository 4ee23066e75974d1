"""Cypher normalisation: what a query does, without the data it carries.

The Cypher counterpart of ``profilis._sql``: string and number literals become ``?``, a list
of them collapses to ``[?]``; map keys, labels (``:Person``), relationship types, backquoted
names and ``$parameters`` stay, since they name things rather than hold data; comments go.
Path lengths (``*1..3``) are shape, not data, and stay. The SQL normaliser is not used as is
because Cypher's ``:Label`` reads as a SQL named parameter there; whitespace and the length
cap are its. Needs only ``re``.
"""

from __future__ import annotations

import re
from typing import Final

from profilis._sql import QUERY_MAX_LENGTH, normalise_statement

__all__ = ["normalise_cypher"]

# One pass; at each position the alternatives are tried in order, so a quote inside a
# comment or a digit inside a name is never taken for a literal. Strings may use either
# quote and escape with a backslash; an unterminated one runs to the end (redact too much).
_TOKENS: Final = re.compile(
    r"""
      (?P<comment> //[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<quoted> `(?:[^`]|``)*` )
    | (?P<literal>
          '(?:[^'\\]|\\.)*(?:'|\Z)
        | "(?:[^"\\]|\\.)*(?:"|\Z)
        | (?<![\w.$*])(?:0[xX][0-9A-Fa-f]+|0o[0-7]+|(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?)(?!\w)
      )
    """,
    re.S | re.X,
)
_LIST: Final = re.compile(r"\[\s*\?(?:\s*,\s*\?)*\s*\]")


def _redact(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "quoted":
        return match.group()
    return " " if kind == "comment" else "?"


def normalise_cypher(query: str, *, redact: bool = True, max_length: int = QUERY_MAX_LENGTH) -> str:
    """Return ``query`` normalised: literals as ``?``, blanks collapsed, at most
    ``max_length`` characters. ``redact=False`` only collapses whitespace.

    >>> normalise_cypher("MATCH (p:Person {name: 'Ann'}) WHERE p.age > 30 RETURN p")
    'MATCH (p:Person {name: ?}) WHERE p.age > ? RETURN p'
    """
    text = query
    if redact:
        text = _LIST.sub("[?]", _TOKENS.sub(_redact, text))
    return normalise_statement(text, redact=False, max_length=max_length)
