"""The values of ``profilis-sidecar``'s flags and variables: text in, value out, or a
``ValueError`` saying what is accepted (``expected a port number in [0, 65535], got 'x'``).

``cli`` uses each parser for a flag (through ``as_flag``, so argparse prints that message)
and for the variable that stands in for it (the message prefixed by the variable's name).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from profilis.config import CollectorAddress, parse_collector_address
from profilis.errors import ConfigError

__all__ = [
    "address",
    "as_flag",
    "count",
    "events_rate",
    "expected",
    "octal",
    "port",
    "rate",
    "seconds",
    "ui_switch",
]

T = TypeVar("T")


def expected(accepted: str, text: str) -> ValueError:
    """The error of every parser here: ``expected <accepted>, got '<text>'``."""
    return ValueError(f"expected {accepted}, got {text!r}")


def address(text: str) -> CollectorAddress:
    try:
        return parse_collector_address(text.strip(), "--listen")
    except ConfigError as exc:
        raise expected(exc.accepted, text) from None


def port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise expected("a port number in [0, 65535]", text)
    return int(text)


def _non_negative(text: str, accepted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise expected(accepted, text)
    return value


def seconds(text: str) -> float:
    return _non_negative(text, "a number of seconds")


def rate(text: str) -> float:
    return _non_negative(text, "a number of datagrams a second (0: unlimited)")


def events_rate(text: str) -> float:
    return _non_negative(text, "a number of events a second (0: off)")


def octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise expected("octal permissions such as 660", text) from None


def count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise expected("a whole number", text)
    return int(text)


_SWITCH = {"on": "on", "true": "on", "off": "off", "false": "off", "token": "token"}


def ui_switch(text: str) -> str:
    """on, off, or token: on only when PROFILIS_SIDECAR_UI_TOKEN holds one (what the operator
    sets when a ProfilisConfig names a token Secret, so a missing Secret closes the page
    rather than open it or keep the pod from starting)."""
    word = _SWITCH.get(text.strip().lower())
    if word is None:
        raise expected("on, off or token", text)
    return word


def as_flag(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its message replaces argparse's "invalid port value"."""

    def parse_flag(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_flag
