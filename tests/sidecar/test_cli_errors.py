"""``profilis-sidecar`` run as a command: every way it refuses to start is one line on stderr
naming what is wrong and what is accepted, with the exit status the docs give (2 for a bad
flag, variable or ``--forward`` spec, or a missing extra; 1 when it cannot start)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.commands import run_command

ADDRESSES = "unix:///absolute/path (at most 107 bytes) or udp://host:port (port in [1, 65535])"


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def test_a_missing_extra_names_the_pip_install_to_run() -> None:
    result = run_command("profilis-sidecar", ["--help"], missing=["prometheus_client"])

    assert result.returncode == 2
    assert result.stderr == (
        "profilis-sidecar: missing dependency 'prometheus_client'; "
        "install it with: pip install 'profilis[sidecar]'\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "bogus"], f"argument --listen: expected {ADDRESSES}, got 'bogus'"),
        (
            ["--listen", "udp://127.0.0.1:0"],
            f"argument --listen: expected {ADDRESSES}, got 'udp://127.0.0.1:0'",
        ),
        (
            ["--metrics-port", "http"],
            "argument --metrics-port: expected a port number in [0, 65535], got 'http'",
        ),
        (
            ["--worker-expiry", "soon"],
            "argument --worker-expiry: expected a number of seconds, got 'soon'",
        ),
        (
            ["--socket-mode", "rw"],
            "argument --socket-mode: expected octal permissions such as 660, got 'rw'",
        ),
        (["--max-series", "many"], "argument --max-series: expected a whole number, got 'many'"),
        (
            ["--ingest-rate-limit", "-3"],
            "argument --ingest-rate-limit: expected a number of datagrams a second "
            "(0: unlimited), got '-3'",
        ),
    ],
)
def test_a_bad_flag_exits_2_naming_the_accepted_forms(argv: list[str], message: str) -> None:
    result = run_command("profilis-sidecar", argv)

    assert result.returncode == 2
    # The error alone: not argparse's twenty-line usage before it.
    assert result.stderr == f"profilis-sidecar: error: {message}\n"
    assert "invalid" not in result.stderr  # argparse's "invalid _address value"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROFILIS_SIDECAR_LISTEN": "bogus"}, f"PROFILIS_SIDECAR_LISTEN: expected {ADDRESSES}"),
        (
            {"PROFILIS_SIDECAR_METRICS_PORT": "http"},
            "PROFILIS_SIDECAR_METRICS_PORT: expected a port number in [0, 65535], got 'http'",
        ),
    ],
)
def test_a_bad_variable_exits_2_naming_it(env: dict[str, str], message: str) -> None:
    result = run_command("profilis-sidecar", env=env)

    assert result.returncode == 2
    assert last_line(result.stderr).startswith(f"profilis-sidecar: error: {message}")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "--forward must be jsonl:DIR, otlp:URL or console[:json], got 'bogus'"),
        ("jsonl:", "--forward jsonl:DIR needs a directory"),
        ("otlp:", "--forward otlp:URL needs the receiver's URL"),
        (
            "otlp:ftp://collector",
            "--forward 'otlp:ftp://collector': endpoint must be an http:// or https:// URL, "
            "got 'ftp://collector'",
        ),
        ("jsonl:/proc/profilis", "--forward 'jsonl:/proc/profilis': [Errno 2]"),
    ],
)
def test_a_bad_forward_spec_exits_2_before_anything_starts(
    spec: str, message: str, tmp_path: Path
) -> None:
    listen = f"unix://{tmp_path}/collector.sock"
    argv = ["--listen", listen, "--metrics-host", "127.0.0.1", "--metrics-port", "0"]

    result = run_command("profilis-sidecar", [*argv, "--forward", spec])

    assert result.returncode == 2
    assert last_line(result.stderr).startswith(f"profilis-sidecar: error: {message}")
    assert not (tmp_path / "collector.sock").exists()  # it refused before binding anything


def test_a_port_in_use_exits_1_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["--listen", f"unix://{tmp_path}/collector.sock", "--metrics-host", "127.0.0.1"]

        result = run_command("profilis-sidecar", [*argv, "--metrics-port", str(port)])

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"profilis-sidecar cannot start: cannot serve metrics on 127.0.0.1:{port}" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
