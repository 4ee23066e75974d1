"""`make demo DURATION=... BACKPRESSURE=...`: good values are taken, bad ones refused by name.

The demo's own parser runs in-process for the cases; one real `make demo DURATION=-5` shows
what the user sees: one line naming DURATION and what it accepts, exit status 2, and nothing
started (it fails before the pod).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from demo.__main__ import build_parser, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("duration", "seconds"), [("0", 0), ("", 0), ("40", 40), (" 60 ", 60)])
def test_duration_takes_whole_seconds_0_meaning_until_ctrl_c(duration: str, seconds: int) -> None:
    assert build_parser().parse_args(["--duration", duration]).duration == seconds


@pytest.mark.parametrize("duration", ["-5", "1.5", "soon", "1e3", "٣"])
def test_a_bad_duration_is_refused_naming_duration_and_what_it_takes(
    duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--duration", duration])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage dump
    assert f"DURATION={duration!r}" in err
    assert "whole seconds, 0 or more" in err and "until Ctrl-C" in err


@pytest.mark.parametrize(
    ("flag", "on"),
    [("1", True), ("true", True), ("ON", True), ("yes", True),
     ("0", False), ("false", False), ("off", False), ("no", False), ("", False)],
)  # fmt: skip
def test_backpressure_takes_on_and_off_in_the_usual_spellings(flag: str, on: bool) -> None:
    assert build_parser().parse_args(["--backpressure", flag]).backpressure is on


@pytest.mark.parametrize("flag", ["maybe", "2", "-1", "enabled"])
def test_a_bad_backpressure_is_refused_by_name(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--backpressure", flag])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"BACKPRESSURE={flag!r} is neither on nor off" in err
    assert "give 1" in err and "or 0" in err


@pytest.mark.slow
def test_make_demo_with_a_negative_duration_says_so_and_exits_2() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # `demo: setup` runs first: a no-op in a set-up tree, which this one is (tests run in it).
    result = subprocess.run(
        ["make", "demo", "DURATION=-5"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "make demo: DURATION='-5' is not a duration: give whole seconds" in result.stderr
    assert "pod running" not in result.stdout  # refused before anything started
