"""Profilis settings: the one place that reads the ``PROFILIS_*`` environment variables.

``load_config()`` turns the environment into a frozen ``Config``; the agent and exporters take
a ``Config`` and never read the environment themselves. A ``Config`` built in code is checked
by the same rules (``profilis._validation``), its errors naming fields instead of variables.
``resolve_setting()`` gives library constructors the same variables as defaults for the
arguments their caller left out.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import urlsplit

from profilis._validation import check_bool, check_float, check_int
from profilis.errors import ConfigError

__all__ = [
    "DEFAULTS_VAR",
    "DEFAULT_COLLECTOR_ADDRESS",
    "ENV_VARS",
    "EXPORTERS",
    "INSTRUMENTATIONS",
    "CollectorAddress",
    "Config",
    "LibrarySetting",
    "load_config",
    "parse_collector_address",
    "resolve_setting",
]

DEFAULT_COLLECTOR_ADDRESS: Final = "unix:///var/run/profilis/collector.sock"
EXPORTERS: Final = frozenset({"collector", "jsonl", "console", "prometheus", "otlp"})
INSTRUMENTATIONS: Final = frozenset({"flask", "wsgi", "asgi", "sqlalchemy"})

# sun_path holds 108 bytes on Linux; keeping one for the NUL also fits what other tools expect.
_SOCKET_PATH_MAX_BYTES: Final = 107
_ADDRESS_ACCEPTED: Final = (
    f"unix:///absolute/path (at most {_SOCKET_PATH_MAX_BYTES} bytes) "
    "or udp://host:port (port in [1, 65535])"
)
# Host names, and dotted IPv4 addresses too, which is all this needs to let through.
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class CollectorAddress:
    """Where the collector exporter sends its datagrams: a Unix socket path or a UDP port."""

    scheme: Literal["unix", "udp"]
    path: str | None = None  # unix only: absolute path of the sidecar's socket
    host: str | None = None  # udp only: name or IP address, IPv6 without brackets
    port: int | None = None  # udp only

    def __post_init__(self) -> None:
        if self.scheme == "unix":
            if self.path is None or not _is_socket_path(self.path):
                accepted = f"an absolute socket path of at most {_SOCKET_PATH_MAX_BYTES} bytes"
                raise ConfigError("path", accepted, self.path)
            if self.host is not None:
                raise ConfigError("host", "None for a unix address", self.host)
            if self.port is not None:
                raise ConfigError("port", "None for a unix address", self.port)
        elif self.scheme == "udp":
            if self.host is None or not (_HOSTNAME.fullmatch(self.host) or _is_ipv6(self.host)):
                raise ConfigError("host", "a host name or an IP address", self.host)
            check_int("port", self.port, minimum=1, maximum=65535)
            if self.path is not None:
                raise ConfigError("path", "None for a udp address", self.path)
        else:
            # Reachable from untyped callers, whatever the Literal says.
            raise ConfigError("scheme", "'unix' or 'udp'", self.scheme)

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if self.host is not None and ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def parse_collector_address(
    text: str, setting: str = "PROFILIS_COLLECTOR_ADDRESS"
) -> CollectorAddress:
    """Parse ``unix:///abs/path`` or ``udp://host:port`` (``udp://[::1]:port`` for IPv6).

    Raises ``ConfigError`` naming ``setting`` for anything else, relative paths included.
    """
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if separator and scheme == "unix" and _is_socket_path(rest):
        return CollectorAddress("unix", path=rest)
    if separator and scheme == "udp":
        host_port = _split_host_port(rest)
        if host_port is not None:
            return CollectorAddress("udp", host=host_port[0], port=host_port[1])
    raise ConfigError(setting, _ADDRESS_ACCEPTED, text)


def _split_host_port(text: str) -> tuple[str, int] | None:
    if text.startswith("["):
        host, separator, port_text = text[1:].partition("]:")
        if not (separator and _is_ipv6(host)):
            return None
    else:
        host, separator, port_text = text.partition(":")
        if not (separator and _HOSTNAME.fullmatch(host)):
            return None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    port = int(port_text)
    return (host, port) if 1 <= port <= 65535 else None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_socket_path(path: str) -> bool:
    if not path.startswith("/") or path.endswith("/") or "\0" in path:
        return False
    try:
        # fsencode: environment values may carry undecodable bytes as surrogate escapes.
        return len(os.fsencode(path)) <= _SOCKET_PATH_MAX_BYTES
    except UnicodeEncodeError:
        return False


_DEFAULT_ADDRESS: Final = parse_collector_address(DEFAULT_COLLECTOR_ADDRESS)


# One function per numeric rule, shared by Config (field names) and load_config (variables).
def _check_sample_rate(setting: str, value: object) -> float:
    return check_float(setting, value, minimum=0, maximum=1)


def _check_queue_size(setting: str, value: object) -> int:
    return check_int(setting, value, minimum=1, maximum=10_000_000)


def _check_batch_max(setting: str, value: object) -> int:
    return check_int(setting, value, minimum=1, maximum=100_000)


def _check_flush_interval(setting: str, value: object) -> float:
    return check_float(setting, value, minimum=0, maximum=60, min_inclusive=False)


@dataclass(frozen=True, slots=True)
class Config:
    """All Profilis settings, checked once at construction (``ConfigError`` names the field).

    Build it in code, or from the environment with ``load_config()``.
    """

    # Master switch; False makes every instrumentation a pass-through. Default True, since
    # installing Profilis is already the opt-in.
    enabled: bool = True
    # Log Profilis' own decisions (drops, reconnects, settings) at DEBUG. Default False.
    debug: bool = False
    # The `service` label on every metric. Default "unknown_service", OpenTelemetry's value.
    service_name: str = "unknown_service"
    # Fraction of requests recorded, in [0, 1]. Default 1.0: with a cheap hot path, keep all.
    sample_rate: float = 1.0
    # Path prefixes never recorded (health checks, /metrics), each starting with "/".
    exclude_routes: tuple[str, ...] = ()
    # Events (count) buffered between app threads and the writer, in [1, 10_000_000].
    # Default 2048: two seconds of a worker emitting 1,000 events/s, a few MB at most.
    queue_size: int = 2048
    # Events (count) per export batch, in [1, 100_000] and at most queue_size. Default 128:
    # enough to amortise a send, few enough that a batch seldom needs splitting to fit a datagram.
    batch_max: int = 128
    # Seconds between flushes when no batch fills up, in (0, 60]. Default 0.1, so a quiet
    # service's events still reach the sidecar well within one scrape interval.
    flush_interval_s: float = 0.1
    # When the queue is full: True drops the oldest event (recent data is worth more),
    # False drops the new one. Either way the drop is counted. Default True.
    drop_oldest: bool = True
    # Directory of the jsonl exporter's files; required when "jsonl" is among the exporters.
    log_dir: str | None = None
    # Exporter names from EXPORTERS, in order, duplicates removed. Default () here;
    # load_config picks ("collector",) when PROFILIS_COLLECTOR_ADDRESS is set.
    exporters: tuple[str, ...] = ()
    # Where the collector exporter sends batches. Default: the sidecar's socket in the
    # emptyDir that the injected pod shares between its containers.
    collector_address: CollectorAddress = _DEFAULT_ADDRESS
    # OTLP/HTTP endpoint (http:// or https:// URL); required when "otlp" is an exporter.
    otlp_endpoint: str | None = None
    # Instrumentations (from INSTRUMENTATIONS) left off, e.g. when an app has its own.
    disabled_instrumentations: frozenset[str] = frozenset()
    # Replace SQL literals and parameters with "?" before they leave the process. Default
    # True: queries can carry personal data, and literals would explode label cardinality.
    redact: bool = True

    def __post_init__(self) -> None:
        # Frozen: normalised values are stored with object.__setattr__, once, right here.
        check_bool("enabled", self.enabled)
        check_bool("debug", self.debug)
        _check_text("service_name", self.service_name)
        object.__setattr__(self, "sample_rate", _check_sample_rate("sample_rate", self.sample_rate))
        routes = _check_names(
            "exclude_routes",
            self.exclude_routes,
            "a list of path prefixes, each starting with '/'",
            lambda route: route.startswith("/"),
        )
        object.__setattr__(self, "exclude_routes", routes)
        _check_queue_size("queue_size", self.queue_size)
        _check_batch_max("batch_max", self.batch_max)
        interval = _check_flush_interval("flush_interval_s", self.flush_interval_s)
        object.__setattr__(self, "flush_interval_s", interval)
        check_bool("drop_oldest", self.drop_oldest)
        if self.log_dir is not None:
            _check_text("log_dir", self.log_dir)
        exporters = _check_names(
            "exporters", self.exporters, _one_of(EXPORTERS), EXPORTERS.__contains__
        )
        object.__setattr__(self, "exporters", exporters)
        address: object = self.collector_address  # a str here is an easy mistake to make
        if not isinstance(address, CollectorAddress):
            accepted = "a CollectorAddress (see parse_collector_address)"
            raise ConfigError("collector_address", accepted, address)
        if self.otlp_endpoint is not None and not _is_http_url(self.otlp_endpoint):
            raise ConfigError("otlp_endpoint", "an http:// or https:// URL", self.otlp_endpoint)
        disabled = _check_names(
            "disabled_instrumentations",
            self.disabled_instrumentations,
            _one_of(INSTRUMENTATIONS),
            INSTRUMENTATIONS.__contains__,
        )
        object.__setattr__(self, "disabled_instrumentations", frozenset(disabled))
        check_bool("redact", self.redact)

        # Rules across fields. The wording names no other field, so load_config can reuse it.
        if self.batch_max > self.queue_size:
            accepted = f"an integer in [1, {self.queue_size}] (no larger than the queue size)"
            raise ConfigError("batch_max", accepted, self.batch_max)
        if "jsonl" in self.exporters and self.log_dir is None:
            raise ConfigError("log_dir", "a directory when the jsonl exporter is enabled", None)
        if "otlp" in self.exporters and self.otlp_endpoint is None:
            accepted = "an http:// or https:// URL when the otlp exporter is enabled"
            raise ConfigError("otlp_endpoint", accepted, None)


def _check_text(setting: str, value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise ConfigError(setting, "a non-empty string of at most 255 characters", value)


def _one_of(names: frozenset[str]) -> str:
    return f"a list of names from {{{', '.join(sorted(names))}}}"


def _check_names(
    setting: str, value: object, accepted: str, is_accepted: Callable[[str], bool]
) -> tuple[str, ...]:
    """Return ``value``'s strings as a tuple, in order, without duplicates."""
    # A lone string is iterable too, but "jsonl" must not become ("j", "s", "o", ...).
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(setting, accepted, value)
    names = tuple(dict.fromkeys(value))
    for name in names:
        if not isinstance(name, str) or not is_accepted(name):
            raise ConfigError(setting, accepted, name)
    return names


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# --------------------------------------------------------------------------- environment

# Field name -> the variable that sets it; ENV_VARS and the error mapping both come from here.
_ENV_BY_FIELD: Final = {
    "enabled": "PROFILIS_ENABLED",
    "debug": "PROFILIS_DEBUG",
    "service_name": "PROFILIS_SERVICE_NAME",
    "sample_rate": "PROFILIS_SAMPLE_RATE",
    "exclude_routes": "PROFILIS_EXCLUDE_ROUTES",
    "queue_size": "PROFILIS_QUEUE_SIZE",
    "batch_max": "PROFILIS_BATCH_MAX",
    "flush_interval_s": "PROFILIS_FLUSH_INTERVAL",
    "drop_oldest": "PROFILIS_DROP_OLDEST",
    "log_dir": "PROFILIS_LOG_DIR",
    "exporters": "PROFILIS_EXPORTERS",
    "collector_address": "PROFILIS_COLLECTOR_ADDRESS",
    "otlp_endpoint": "PROFILIS_OTLP_ENDPOINT",
    "disabled_instrumentations": "PROFILIS_DISABLED_INSTRUMENTATIONS",
    "redact": "PROFILIS_REDACT",
}
ENV_VARS: Final[tuple[str, ...]] = tuple(_ENV_BY_FIELD.values())
#: A JSON object of ``PROFILIS_*`` variables used where the environment itself does not set
#: them. The operator puts the injected settings here for a container with ``envFrom``: an
#: ``env`` entry would override the value the app's ConfigMap or Secret gives, this cannot.
DEFAULTS_VAR: Final = "PROFILIS_DEFAULTS"

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_BOOL_ACCEPTED: Final = "one of true, false, 1, 0, yes, no, on, off"
# Strict forms: int() and float() would also take "1_000", "nan", "inf" and non-ASCII digits.
_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,18}")  # longer is out of range anyway
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build a ``Config`` from ``PROFILIS_*`` variables (``os.environ``, read now, by default).

    Unset or blank variables take the defaults. A bad value raises ``ConfigError`` naming
    the variable and what it accepts, e.g.
    ``PROFILIS_QUEUE_SIZE must be an integer in [1, 10000000], got '0'``.
    """
    raw = _raw_environment(ENV_VARS, environ)
    try:
        return _config_from(raw)
    except ConfigError as error:
        # Config names its fields; users of the environment need to see the variable, and the
        # text they wrote rather than its parsed number.
        name = _ENV_BY_FIELD.get(error.setting, error.setting)
        written = raw.get(name)
        got = error.got if isinstance(error.got, str) or written is None else written
        raise ConfigError(name, error.accepted, got) from None


def _raw_environment(names: Iterable[str], environ: Mapping[str, str] | None) -> dict[str, str]:
    """The texts of ``names`` set in ``environ`` (``os.environ`` by default), read now,
    over those of ``PROFILIS_DEFAULTS``; unset and blank ones are left out."""
    source = os.environ if environ is None else environ
    # Surrounding blanks are dropped: values often come from YAML with a stray newline.
    raw = _defaults_layer(source.get(DEFAULTS_VAR, "").strip())
    raw.update({name: text for name in names if (text := source.get(name, "").strip())})
    return raw


def _defaults_layer(text: str) -> dict[str, str]:
    """The variables ``PROFILIS_DEFAULTS`` holds (blanks dropped, like the environment's)."""
    if not text:
        return {}
    accepted = f"a JSON object whose keys are among {', '.join(ENV_VARS)} and values strings"
    try:
        layer = json.loads(text)
    except ValueError:
        raise ConfigError(DEFAULTS_VAR, accepted, text) from None
    if not isinstance(layer, dict) or not all(
        name in ENV_VARS and isinstance(value, str) for name, value in layer.items()
    ):
        raise ConfigError(DEFAULTS_VAR, accepted, text)
    return {name: value.strip() for name, value in layer.items() if value.strip()}


def _config_from(raw: dict[str, str]) -> Config:
    defaults = Config()
    address_text = raw.get("PROFILIS_COLLECTOR_ADDRESS")
    exporters = _parse_list(raw, "PROFILIS_EXPORTERS", lower=True)
    if exporters is None:
        exporters = ("collector",) if address_text is not None else ()
    return Config(
        enabled=_parse_bool(raw, "PROFILIS_ENABLED", defaults.enabled),
        debug=_parse_bool(raw, "PROFILIS_DEBUG", defaults.debug),
        service_name=raw.get("PROFILIS_SERVICE_NAME", defaults.service_name),
        sample_rate=_parse_float(
            raw, "PROFILIS_SAMPLE_RATE", defaults.sample_rate, _check_sample_rate
        ),
        exclude_routes=_parse_list(raw, "PROFILIS_EXCLUDE_ROUTES", lower=False) or (),
        queue_size=_parse_int(raw, "PROFILIS_QUEUE_SIZE", defaults.queue_size, _check_queue_size),
        batch_max=_parse_int(raw, "PROFILIS_BATCH_MAX", defaults.batch_max, _check_batch_max),
        flush_interval_s=_parse_float(
            raw, "PROFILIS_FLUSH_INTERVAL", defaults.flush_interval_s, _check_flush_interval
        ),
        drop_oldest=_parse_bool(raw, "PROFILIS_DROP_OLDEST", defaults.drop_oldest),
        log_dir=raw.get("PROFILIS_LOG_DIR"),
        exporters=exporters,
        collector_address=(
            defaults.collector_address
            if address_text is None
            else parse_collector_address(address_text, "PROFILIS_COLLECTOR_ADDRESS")
        ),
        otlp_endpoint=raw.get("PROFILIS_OTLP_ENDPOINT"),
        disabled_instrumentations=frozenset(
            _parse_list(raw, "PROFILIS_DISABLED_INSTRUMENTATIONS", lower=True) or ()
        ),
        redact=_parse_bool(raw, "PROFILIS_REDACT", defaults.redact),
    )


def _parse_bool(raw: Mapping[str, str], name: str, default: bool) -> bool:
    text = raw.get(name)
    if text is None:
        return default
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConfigError(name, _BOOL_ACCEPTED, text)


def _parse_int(
    raw: Mapping[str, str], name: str, default: int, check: Callable[[str, object], int]
) -> int:
    text = raw.get(name)
    if text is None:
        return default
    # Text that is no integer goes to the check as it is: refused, with the same message.
    return check(name, int(text) if _INTEGER.fullmatch(text) else text)


def _parse_float(
    raw: Mapping[str, str], name: str, default: float, check: Callable[[str, object], float]
) -> float:
    text = raw.get(name)
    if text is None:
        return default
    return check(name, float(text) if _DECIMAL.fullmatch(text) else text)


def _parse_list(raw: Mapping[str, str], name: str, *, lower: bool) -> tuple[str, ...] | None:
    """Split a comma list, dropping blank items; None when the variable is unset."""
    text = raw.get(name)
    if text is None:
        return None
    items = (item.strip() for item in text.split(","))
    return tuple(item.lower() if lower else item for item in items if item)


# --------------------------------------------------------------------------- library defaults

#: The settings a library constructor takes from its variable when the caller leaves the
#: argument out (``None``); the names are ``Config``'s fields.
LibrarySetting = Literal[
    "enabled",
    "service_name",
    "sample_rate",
    "exclude_routes",
    "queue_size",
    "batch_max",
    "flush_interval_s",
    "drop_oldest",
    "redact",
]
_T = TypeVar("_T")
_CONFIG_DEFAULTS: Final = Config()
_ROUTES_ACCEPTED: Final = "a list of path prefixes, each starting with '/'"


def resolve_setting(
    setting: LibrarySetting, explicit: _T | None, environ: Mapping[str, str] | None = None
) -> _T:
    """``explicit`` if the caller passed it, else the setting's ``PROFILIS_*`` variable (or
    its ``PROFILIS_DEFAULTS`` entry), else ``Config``'s default.

    Library constructors call it once per argument left as ``None``: at construction, never
    at import nor on the hot path, and only for the variables they use. A bad value raises
    ``ConfigError`` naming the variable, as ``load_config`` does.
    """
    if explicit is not None:
        return explicit
    name = _ENV_BY_FIELD[setting]
    raw = _raw_environment((name,), environ)
    try:
        value = _SETTING_PARSERS[setting](raw, name, getattr(_CONFIG_DEFAULTS, setting))
    except ConfigError as error:
        # As load_config: the message quotes the text written, not the number parsed from it.
        written = raw.get(name)
        if written is None or isinstance(error.got, str):
            raise
        raise ConfigError(name, error.accepted, written) from None
    return cast(_T, value)


def _parse_text(raw: Mapping[str, str], name: str, default: str) -> str:
    text = raw.get(name)
    if text is None:
        return default
    _check_text(name, text)
    return text


def _parse_routes(raw: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    routes = _parse_list(raw, name, lower=False)
    if routes is None:
        return default
    return _check_names(name, routes, _ROUTES_ACCEPTED, lambda route: route.startswith("/"))


def _numeric(
    parse: Callable[[Mapping[str, str], str, Any, Callable[[str, object], Any]], object],
    check: Callable[[str, object], Any],
) -> Callable[[Mapping[str, str], str, Any], object]:
    return lambda raw, name, default: parse(raw, name, default, check)


_SETTING_PARSERS: Final[dict[str, Callable[[Mapping[str, str], str, Any], object]]] = {
    "enabled": _parse_bool,
    "service_name": _parse_text,
    "sample_rate": _numeric(_parse_float, _check_sample_rate),
    "exclude_routes": _parse_routes,
    "queue_size": _numeric(_parse_int, _check_queue_size),
    "batch_max": _numeric(_parse_int, _check_batch_max),
    "flush_interval_s": _numeric(_parse_float, _check_flush_interval),
    "drop_oldest": _parse_bool,
    "redact": _parse_bool,
}
