"""``profilis-operator``'s command line: a bad flag or variable stops it before it touches the
cluster, with exit status 2 and a message naming the setting and what it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from profilis_operator.cli import build_parser, main, options_from_args

CERTS = ("--tls-cert-file", "/certs/tls.crt", "--tls-key-file", "/certs/tls.key")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ((), {}, "give --tls-cert-file and --tls-key-file, or --self-signed"),
        (("--self-signed", *CERTS), {}, "--self-signed and --tls-cert-file/--tls-key-file"),
        (
            ("--webhook-port", "70000", *CERTS),
            {},
            "--webhook-port must be a port in [1, 65535], got 70000",
        ),
        (("--health-port", "0", *CERTS), {}, "--health-port must be a port in [1, 65535], got 0"),
        (
            ("--status-interval", "0", *CERTS),
            {},
            "--status-interval must be in (0, 3600] seconds, got 0.0",
        ),
        (
            ("--self-signed", "--ca-bundle-interval", "7200"),
            {},
            "--ca-bundle-interval must be in (0, 3600] seconds, got 7200.0",
        ),
        (
            CERTS,
            {"PROFILIS_OPERATOR_NATIVE_SIDECARS": "sometimes"},
            "PROFILIS_OPERATOR_NATIVE_SIDECARS must be auto, always or never, got 'sometimes'",
        ),
        (("--native-sidecars", "yes", *CERTS), {}, "invalid choice: 'yes'"),
        (
            ("--webhook-max-connections", "0", *CERTS),
            {},
            "--webhook-max-connections must be an integer in [1, 10000], got 0",
        ),
        (
            ("--webhook-handshake-timeout", "0", *CERTS),
            {},
            "--webhook-handshake-timeout must be in (0, 600] seconds, got 0.0",
        ),
        (
            ("--webhook-idle-timeout", "900", *CERTS),
            {},
            "--webhook-idle-timeout must be in (0, 600] seconds, got 900.0",
        ),
        (
            ("--webhook-max-review-bytes", "1000", *CERTS),
            {},
            "--webhook-max-review-bytes must be an integer in [65536, 67108864], got 1000",
        ),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(
    argv: tuple[str, ...],
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(argv), environ)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_defaults_file_names_the_field(tmp_path: Path) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("sampling:\n  rate: 3\n")
    args = build_parser().parse_args([*CERTS, "--defaults", str(defaults)])
    with pytest.raises(ValueError, match=r"operator defaults: .*sampling\.rate"):
        options_from_args(args, {})


def test_flags_win_over_the_environment() -> None:
    args = build_parser().parse_args([*CERTS, "--namespace", "ops", "--native-sidecars", "never"])
    environ = {"POD_NAMESPACE": "elsewhere", "PROFILIS_OPERATOR_NATIVE_SIDECARS": "always"}
    options = options_from_args(args, environ)
    assert (options.namespace, options.native_sidecars) == ("ops", "never")
    assert "ops" in options.all_excluded_namespaces
    assert "kube-system" in options.all_excluded_namespaces
