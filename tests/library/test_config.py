"""profilis.config: settings from the environment and from code, and their error messages."""

from __future__ import annotations

import dataclasses

import pytest

from profilis.config import (
    DEFAULT_COLLECTOR_ADDRESS,
    ENV_VARS,
    EXPORTERS,
    INSTRUMENTATIONS,
    CollectorAddress,
    Config,
    load_config,
    parse_collector_address,
)
from profilis.errors import ConfigError

# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = load_config({})
    assert config == Config()
    assert config.enabled is True
    assert config.debug is False
    assert config.service_name == "unknown_service"
    assert config.sample_rate == 1.0
    assert config.exclude_routes == ()
    assert config.queue_size == 2048
    assert config.batch_max == 128
    assert config.flush_interval_s == 0.1
    assert config.drop_oldest is True
    assert config.log_dir is None
    assert config.exporters == ()
    assert str(config.collector_address) == DEFAULT_COLLECTOR_ADDRESS
    assert config.otlp_endpoint is None
    assert config.disabled_instrumentations == frozenset()
    assert config.redact is True


def test_env_vars_lists_every_documented_variable() -> None:
    assert set(ENV_VARS) == {
        "PROFILIS_ENABLED",
        "PROFILIS_DEBUG",
        "PROFILIS_SERVICE_NAME",
        "PROFILIS_SAMPLE_RATE",
        "PROFILIS_EXCLUDE_ROUTES",
        "PROFILIS_QUEUE_SIZE",
        "PROFILIS_BATCH_MAX",
        "PROFILIS_FLUSH_INTERVAL",
        "PROFILIS_DROP_OLDEST",
        "PROFILIS_LOG_DIR",
        "PROFILIS_EXPORTERS",
        "PROFILIS_COLLECTOR_ADDRESS",
        "PROFILIS_OTLP_ENDPOINT",
        "PROFILIS_DISABLED_INSTRUMENTATIONS",
        "PROFILIS_REDACT",
    }
    assert len(ENV_VARS) == len(set(ENV_VARS))


def test_empty_and_blank_values_mean_unset() -> None:
    assert load_config(dict.fromkeys(ENV_VARS, "")) == Config()
    assert load_config(dict.fromkeys(ENV_VARS, "  ")) == Config()


def test_reads_os_environ_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "4096")
    assert load_config().queue_size == 4096
    monkeypatch.setenv("PROFILIS_QUEUE_SIZE", "512")
    assert load_config().queue_size == 512


def test_variables_of_other_programs_are_ignored() -> None:
    assert load_config({"PROFILIS_SIDECAR_LISTEN": "nonsense", "HOME": "/root"}) == Config()


# --------------------------------------------------------------------------- each variable


def test_every_variable_is_parsed() -> None:
    config = load_config(
        {
            "PROFILIS_ENABLED": "off",
            "PROFILIS_DEBUG": "YES",
            "PROFILIS_SERVICE_NAME": "checkout",
            "PROFILIS_SAMPLE_RATE": "0.25",
            "PROFILIS_EXCLUDE_ROUTES": "/healthz, /metrics,,",
            "PROFILIS_QUEUE_SIZE": "10000",
            "PROFILIS_BATCH_MAX": "500",
            "PROFILIS_FLUSH_INTERVAL": "2.5",
            "PROFILIS_DROP_OLDEST": "false",
            "PROFILIS_LOG_DIR": "/var/log/profilis",
            "PROFILIS_EXPORTERS": "jsonl, OTLP,jsonl,console",
            "PROFILIS_COLLECTOR_ADDRESS": "udp://127.0.0.1:4317",
            "PROFILIS_OTLP_ENDPOINT": "https://otel.example:4318",
            "PROFILIS_DISABLED_INSTRUMENTATIONS": "Flask,sqlalchemy",
            "PROFILIS_REDACT": "0",
        }
    )
    assert config == Config(
        enabled=False,
        debug=True,
        service_name="checkout",
        sample_rate=0.25,
        exclude_routes=("/healthz", "/metrics"),
        queue_size=10_000,
        batch_max=500,
        flush_interval_s=2.5,
        drop_oldest=False,
        log_dir="/var/log/profilis",
        exporters=("jsonl", "otlp", "console"),
        collector_address=CollectorAddress("udp", host="127.0.0.1", port=4317),
        otlp_endpoint="https://otel.example:4318",
        disabled_instrumentations=frozenset({"flask", "sqlalchemy"}),
        redact=False,
    )


@pytest.mark.parametrize(
    "name", ["PROFILIS_ENABLED", "PROFILIS_DEBUG", "PROFILIS_DROP_OLDEST", "PROFILIS_REDACT"]
)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        (" true\n", True),
    ],
)
def test_booleans(name: str, text: str, expected: bool) -> None:
    config = load_config({name: text})
    field = {
        "PROFILIS_ENABLED": "enabled",
        "PROFILIS_DEBUG": "debug",
        "PROFILIS_DROP_OLDEST": "drop_oldest",
        "PROFILIS_REDACT": "redact",
    }[name]
    assert getattr(config, field) is expected


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0.0), ("1", 1.0), (".5", 0.5), ("1e-3", 0.001), ("+0.1", 0.1)]
)
def test_sample_rate_numbers(text: str, expected: float) -> None:
    assert load_config({"PROFILIS_SAMPLE_RATE": text}).sample_rate == expected


def test_sample_rate_is_always_a_float() -> None:
    assert type(load_config({"PROFILIS_SAMPLE_RATE": "1"}).sample_rate) is float
    assert type(Config(sample_rate=1).sample_rate) is float


def test_batch_max_may_equal_queue_size() -> None:
    config = load_config({"PROFILIS_QUEUE_SIZE": "64", "PROFILIS_BATCH_MAX": "64"})
    assert (config.queue_size, config.batch_max) == (64, 64)


# --------------------------------------------------------------------------- exporters


def test_exporters_default_to_collector_when_an_address_is_set() -> None:
    config = load_config({"PROFILIS_COLLECTOR_ADDRESS": "unix:///tmp/p.sock"})
    assert config.exporters == ("collector",)
    assert config.collector_address == CollectorAddress("unix", path="/tmp/p.sock")


def test_exporters_default_to_none_without_an_address() -> None:
    assert load_config({}).exporters == ()


def test_explicit_exporters_win_over_the_address_default() -> None:
    env = {"PROFILIS_COLLECTOR_ADDRESS": "udp://localhost:9000", "PROFILIS_EXPORTERS": "console"}
    assert load_config(env).exporters == ("console",)


def test_exporters_list_of_only_commas_means_no_exporter() -> None:
    env = {"PROFILIS_COLLECTOR_ADDRESS": "udp://localhost:9000", "PROFILIS_EXPORTERS": ","}
    assert load_config(env).exporters == ()


def test_exporter_duplicates_are_removed_in_order() -> None:
    config = Config(exporters=("prometheus", "console", "prometheus"))
    assert config.exporters == ("prometheus", "console")


def test_every_accepted_exporter_name_loads() -> None:
    env = {
        "PROFILIS_EXPORTERS": ",".join(sorted(EXPORTERS)),
        "PROFILIS_LOG_DIR": "/tmp/x",
        "PROFILIS_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    assert set(load_config(env).exporters) == EXPORTERS


def test_every_instrumentation_name_loads() -> None:
    env = {"PROFILIS_DISABLED_INSTRUMENTATIONS": ",".join(INSTRUMENTATIONS)}
    assert load_config(env).disabled_instrumentations == INSTRUMENTATIONS


# --------------------------------------------------------------------------- bad values

INT_QUEUE = "an integer in [1, 10000000]"
INT_BATCH = "an integer in [1, 100000]"
BOOL = "one of true, false, 1, 0, yes, no, on, off"
ADDRESS = "unix:///absolute/path (at most 107 bytes) or udp://host:port (port in [1, 65535])"

BAD_VALUES = [
    # (variable, value, accepted text in the message, value shown after "got")
    *[(name, "maybe", BOOL, "maybe") for name in ("PROFILIS_ENABLED", "PROFILIS_DEBUG")],
    *[(name, "2", BOOL, "2") for name in ("PROFILIS_DROP_OLDEST", "PROFILIS_REDACT")],
    ("PROFILIS_ENABLED", "t", BOOL, "t"),
    ("PROFILIS_SERVICE_NAME", "s" * 256, "a non-empty string of at most 255 characters", "s" * 256),
    *[
        ("PROFILIS_SAMPLE_RATE", text, "a number in [0, 1]", text)
        for text in ("1.5", "-0.1", "nan", "inf", "half", "1_0", "0x1", "½")
    ],
    ("PROFILIS_EXCLUDE_ROUTES", "/ok,health", "path prefixes, each starting with '/'", "health"),
    *[
        ("PROFILIS_QUEUE_SIZE", text, INT_QUEUE, text)
        for text in ("0", "-5", "10000001", "1e3", "2.0", "1_000", "abc", "٣", "9" * 40)
    ],
    *[("PROFILIS_BATCH_MAX", text, INT_BATCH, text) for text in ("0", "100001", "12.5")],
    (
        "PROFILIS_BATCH_MAX",
        "4096",
        "an integer in [1, 2048] (no larger than the queue size)",
        "4096",
    ),
    *[
        ("PROFILIS_FLUSH_INTERVAL", text, "a number in (0, 60]", text)
        for text in ("0", "-1", "60.5", "nan", "-inf", "1s")
    ],
    (
        "PROFILIS_EXPORTERS",
        "console,kafka",
        "{collector, console, jsonl, otlp, prometheus}",
        "kafka",
    ),
    ("PROFILIS_EXPORTERS", "jsonl", "a directory when the jsonl exporter is enabled", None),
    *[
        ("PROFILIS_COLLECTOR_ADDRESS", text, ADDRESS, text)
        for text in (
            "/var/run/p.sock",
            "unix://relative.sock",
            "unix:///dir/",
            "unix:///" + "p" * 107,
            "tcp://127.0.0.1:9000",
            "udp://127.0.0.1",
            "udp://127.0.0.1:0",
            "udp://127.0.0.1:65536",
            "udp://:9000",
            "udp://::1:9000",
            "udp://[not-ipv6]:9000",
            "udp://host:9000/path",
            "udp://user@host:9000",
        )
    ],
    ("PROFILIS_OTLP_ENDPOINT", "otel:4318", "an http:// or https:// URL", "otel:4318"),
    (
        "PROFILIS_OTLP_ENDPOINT",
        "grpc://otel:4317",
        "an http:// or https:// URL",
        "grpc://otel:4317",
    ),
    ("PROFILIS_OTLP_ENDPOINT", "http://[::1", "an http:// or https:// URL", "http://[::1"),
    ("PROFILIS_EXPORTERS", "otlp", "URL when the otlp exporter is enabled", None),
    ("PROFILIS_DISABLED_INSTRUMENTATIONS", "django", "{asgi, flask, sqlalchemy, wsgi}", "django"),
]


def _variable_named_in_error(name: str, value: str) -> str:
    # The jsonl and otlp rules are set off by PROFILIS_EXPORTERS but blame the missing setting.
    if name == "PROFILIS_EXPORTERS" and value == "jsonl":
        return "PROFILIS_LOG_DIR"
    if name == "PROFILIS_EXPORTERS" and value == "otlp":
        return "PROFILIS_OTLP_ENDPOINT"
    return name


@pytest.mark.parametrize(("name", "value", "accepted", "got"), BAD_VALUES)
def test_bad_values_name_the_variable_and_what_it_accepts(
    name: str, value: str, accepted: str, got: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({name: value})
    blamed = _variable_named_in_error(name, value)
    message = str(caught.value)
    assert message.startswith(f"{blamed} must be ")
    assert accepted in message
    assert message.endswith(f", got {got!r}")
    assert caught.value.setting == blamed


def test_bad_value_message_matches_the_documented_example() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"PROFILIS_QUEUE_SIZE": "0"})
    assert str(caught.value) == "PROFILIS_QUEUE_SIZE must be an integer in [1, 10000000], got '0'"


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="PROFILIS_DEBUG"):
        load_config({"PROFILIS_DEBUG": "perhaps"})


# --------------------------------------------------------------------------- Config in code


@pytest.mark.parametrize(
    ("changes", "field", "accepted"),
    [
        ({"queue_size": 0}, "queue_size", "an integer in [1, 10000000]"),
        ({"queue_size": True}, "queue_size", "an integer"),
        ({"batch_max": 200, "queue_size": 100}, "batch_max", "an integer in [1, 100]"),
        ({"sample_rate": 2.0}, "sample_rate", "a number in [0, 1]"),
        ({"flush_interval_s": 0.0}, "flush_interval_s", "a number in (0, 60]"),
        ({"enabled": "yes"}, "enabled", "True or False"),
        ({"redact": 1}, "redact", "True or False"),
        ({"service_name": ""}, "service_name", "a non-empty string"),
        ({"log_dir": ""}, "log_dir", "a non-empty string"),
        ({"exclude_routes": ("health",)}, "exclude_routes", "starting with '/'"),
        ({"exporters": "jsonl"}, "exporters", "a list of names from"),
        ({"exporters": ("jsonl",)}, "log_dir", "when the jsonl exporter is enabled"),
        ({"exporters": ("zipkin",)}, "exporters", "a list of names from"),
        ({"collector_address": "udp://h:1"}, "collector_address", "a CollectorAddress"),
        ({"otlp_endpoint": "localhost:4318"}, "otlp_endpoint", "an http:// or https:// URL"),
        ({"disabled_instrumentations": {"django"}}, "disabled_instrumentations", "names from"),
    ],
)
def test_config_in_code_names_the_field(
    changes: dict[str, object], field: str, accepted: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Config(**changes)  # type: ignore[arg-type]
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith(f"{field} must be ")
    assert accepted in str(caught.value)


def test_config_queue_size_zero_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^queue_size must be an integer in \[1, 10000000\]"):
        Config(queue_size=0)


def test_config_is_frozen_and_hashable() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.queue_size = 1  # type: ignore[misc]
    assert hash(config) == hash(Config())


def test_config_accepts_lists_where_it_stores_tuples() -> None:
    config = Config(exclude_routes=["/a", "/b"], disabled_instrumentations=["wsgi"])  # type: ignore[arg-type]
    assert config.exclude_routes == ("/a", "/b")
    assert config.disabled_instrumentations == frozenset({"wsgi"})


# --------------------------------------------------------------------------- collector address


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        (
            "unix:///var/run/profilis/collector.sock",
            CollectorAddress("unix", path="/var/run/profilis/collector.sock"),
            "unix:///var/run/profilis/collector.sock",
        ),
        ("UNIX:///tmp/a b.sock", CollectorAddress("unix", path="/tmp/a b.sock"), None),
        (
            "unix:///" + "p" * 106,
            CollectorAddress("unix", path="/" + "p" * 106),
            "unix:///" + "p" * 106,
        ),
        ("udp://127.0.0.1:9000", CollectorAddress("udp", host="127.0.0.1", port=9000), None),
        ("udp://localhost:1", CollectorAddress("udp", host="localhost", port=1), None),
        (
            "udp://profilis-sidecar.ns.svc:65535",
            CollectorAddress("udp", host="profilis-sidecar.ns.svc", port=65535),
            None,
        ),
        ("udp://[::1]:9000", CollectorAddress("udp", host="::1", port=9000), None),
        (
            "udp://[fe80::1%eth0]:53",
            CollectorAddress("udp", host="fe80::1%eth0", port=53),
            None,
        ),
    ],
)
def test_collector_address_parses_and_prints_back(
    text: str, expected: CollectorAddress, canonical: str | None
) -> None:
    address = parse_collector_address(text)
    assert address == expected
    if canonical is not None:
        assert str(address) == canonical
    assert parse_collector_address(str(address)) == address


def test_collector_address_errors_name_the_setting_given() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_collector_address("udp://host:0", setting="--listen")
    assert str(caught.value) == f"--listen must be {ADDRESS}, got 'udp://host:0'"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"scheme": "unix"}, "path"),
        ({"scheme": "unix", "path": "relative"}, "path"),
        ({"scheme": "unix", "path": "/a", "port": 1}, "port"),
        ({"scheme": "udp", "host": "h"}, "port"),
        ({"scheme": "udp", "host": "h", "port": 70000}, "port"),
        ({"scheme": "udp", "host": "h h", "port": 1}, "host"),
        ({"scheme": "tcp", "host": "h", "port": 1}, "scheme"),
    ],
)
def test_collector_address_in_code_is_checked(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named} must be "):
        CollectorAddress(**fields)  # type: ignore[arg-type]


def test_defaults_var_fills_only_what_the_environment_leaves_unset() -> None:
    environ = {
        "PROFILIS_DEFAULTS": '{"PROFILIS_SAMPLE_RATE": "0.5", "PROFILIS_SERVICE_NAME": "x",'
        ' "PROFILIS_QUEUE_SIZE": " "}',
        "PROFILIS_SAMPLE_RATE": "0.1",
    }

    config = load_config(environ)

    assert (config.sample_rate, config.service_name) == (0.1, "x")
    assert config.queue_size == Config().queue_size  # a blank default means unset


@pytest.mark.parametrize(
    "text",
    ['{"PROFILIS_SAMPLE_RATE": 0.5}', '{"PATH": "/bin"}', '["PROFILIS_DEBUG"]', "{not json"],
)
def test_a_bad_defaults_var_names_it_and_what_it_accepts(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"PROFILIS_DEFAULTS": text})

    assert raised.value.setting == "PROFILIS_DEFAULTS"
    assert "JSON object" in str(raised.value) and "PROFILIS_SAMPLE_RATE" in str(raised.value)


def test_a_bad_value_inside_the_defaults_var_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PROFILIS_SAMPLE_RATE"):
        load_config({"PROFILIS_DEFAULTS": '{"PROFILIS_SAMPLE_RATE": "2"}'})
