"""``profilis-sidecar`` settings: flags over environment over defaults, clear errors."""

from __future__ import annotations

import pytest

from profilis.config import parse_collector_address
from profilis_sidecar.cli import build_parser, main, settings_from_args
from profilis_sidecar.settings import SidecarError, SidecarSettings


def settings(argv: list[str], env: dict[str, str] | None = None) -> SidecarSettings:
    return settings_from_args(build_parser().parse_args(argv), env or {})


def test_defaults_follow_the_design() -> None:
    result = settings([])

    assert [str(a) for a in result.listen] == ["unix:///var/run/profilis/collector.sock"]
    assert result.metrics_port == 9464
    assert result.metrics_host == "0.0.0.0"
    assert result.service == "unknown_service"
    assert result.ingest_rate_limit == 0.0  # unlimited


def test_environment_fills_what_flags_leave_out() -> None:
    env = {
        "PROFILIS_SIDECAR_LISTEN": "unix:///run/p/c.sock, udp://127.0.0.1:9000,",
        "PROFILIS_SIDECAR_METRICS_PORT": "9999",
        "PROFILIS_SERVICE_NAME": "shop",
        "POD_NAME": "shop-1",
        "POD_NAMESPACE": "prod",
    }

    result = settings([], env)

    assert [str(a) for a in result.listen] == ["unix:///run/p/c.sock", "udp://127.0.0.1:9000"]
    assert (result.metrics_port, result.service) == (9999, "shop")
    assert (result.pod_name, result.pod_namespace) == ("shop-1", "prod")


def test_flags_win_over_the_environment() -> None:
    env = {"PROFILIS_SIDECAR_LISTEN": "unix:///a.sock", "PROFILIS_SIDECAR_METRICS_PORT": "1"}

    result = settings(
        ["--listen", "unix:///b.sock", "--listen", "udp://127.0.0.1:5", "--metrics-port", "2"],
        env,
    )

    assert result.listen == (
        parse_collector_address("unix:///b.sock"),
        parse_collector_address("udp://127.0.0.1:5"),
    )
    assert result.metrics_port == 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROFILIS_SIDECAR_LISTEN": "tcp://x:1"}, "PROFILIS_SIDECAR_LISTEN"),
        ({"PROFILIS_SIDECAR_METRICS_PORT": "http"}, "PROFILIS_SIDECAR_METRICS_PORT"),
        ({"PROFILIS_SIDECAR_METRICS_PORT": "70000"}, "PROFILIS_SIDECAR_METRICS_PORT"),
        ({"PROFILIS_SERVICE_NAME": "x" * 300}, "PROFILIS_SERVICE_NAME"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SidecarError, match=named):
        settings([], env)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--listen", "/relative.sock"], "--listen"),
        (["--metrics-port", "-1"], "--metrics-port"),
        (["--worker-expiry", "0.1"], "worker_expiry_s"),
        (["--socket-mode", "999"], "--socket-mode"),
        (["--ingest-rate-limit", "-3"], "--ingest-rate-limit"),
    ],
)
def test_bad_flags_stop_start_up_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv, environ={})

    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_the_ingest_rate_limit_comes_from_its_flag_or_its_variable() -> None:
    env = {"PROFILIS_SIDECAR_INGEST_RATE_LIMIT": "2.5"}

    assert settings([], env).ingest_rate_limit == 2.5
    assert settings(["--ingest-rate-limit", "0"], env).ingest_rate_limit == 0.0
    with pytest.raises(SidecarError, match="PROFILIS_SIDECAR_INGEST_RATE_LIMIT"):
        settings([], {"PROFILIS_SIDECAR_INGEST_RATE_LIMIT": "fast"})
    with pytest.raises(SidecarError, match="PROFILIS_SIDECAR_INGEST_RATE_LIMIT"):
        settings([], {"PROFILIS_SIDECAR_INGEST_RATE_LIMIT": "-1"})
    with pytest.raises(SidecarError, match=r"ingest_rate_limit.*0"):
        SidecarSettings(ingest_rate_limit=-1.0)
    with pytest.raises(SidecarError, match="ingest_rate_limit"):
        SidecarSettings(ingest_rate_limit=1e9)


def test_same_socket_twice_is_refused() -> None:
    with pytest.raises(SidecarError, match="twice"):
        settings(["--listen", "unix:///a.sock", "--listen", "unix:///a.sock"])
