"""``profilis-sidecar``: flags and environment to ``SidecarSettings``, then run until SIGTERM.

Flags win over the environment: ``PROFILIS_SIDECAR_LISTEN`` (comma list of addresses),
``PROFILIS_SIDECAR_METRICS_PORT``, ``PROFILIS_SIDECAR_MAX_LABEL_LENGTH``,
``PROFILIS_SIDECAR_SERIES_BUDGET``, ``PROFILIS_SIDECAR_MAX_WORKERS``,
``PROFILIS_SIDECAR_INGEST_RATE_LIMIT`` (datagrams a second; for demos and alert tests),
``PROFILIS_SIDECAR_UI`` (on|off|token), ``PROFILIS_SIDECAR_HTTP_*`` (the metrics port's limits),
``PROFILIS_SERVICE_NAME`` (read through ``profilis.config``), ``PROFILIS_SIDECAR_UI_TOKEN``
(the dashboard's token; never a flag, so it stays out of ``ps``) and the downward-API
``POD_NAME``/``POD_NAMESPACE`` (logs and /_profilis only). A bad value stops start-up with a
message naming the flag or variable and what it accepts. The sidecar's own dependencies (the
``sidecar`` extra) are imported in ``main``, so that a missing one is named in one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from profilis import __version__
from profilis._commands import CommandParser, requires_extra
from profilis.config import CollectorAddress, load_config, parse_collector_address
from profilis.errors import ConfigError
from profilis_sidecar import flags
from profilis_sidecar.settings import (
    DEFAULT_LISTEN,
    DEFAULT_METRICS_PORT,
    SidecarError,
    SidecarSettings,
)

if TYPE_CHECKING:
    from profilis_sidecar.forward import ForwardSink

__all__ = ["build_parser", "main", "settings_from_args"]

log = logging.getLogger("profilis.sidecar")
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    from profilis_sidecar.forward import FORWARD_SPECS  # prometheus_client: the sidecar extra

    parser = CommandParser(
        prog="profilis-sidecar",
        description="The shared Profilis collector of a pod: agents send batches over a "
        "datagram socket; one /metrics shows every worker.",
        epilog="Exit status: 0 after a clean drain (SIGTERM or SIGINT), 1 when it cannot start "
        "(a socket or the port cannot be bound), 2 for a bad flag, variable or --forward spec, "
        "or a missing dependency (the sidecar extra).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--listen",
        action="append",
        type=flags.as_flag(flags.address),
        metavar="ADDRESS",
        help="unix:///path or udp://127.0.0.1:PORT; repeatable (env PROFILIS_SIDECAR_LISTEN, "
        f"comma list; default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--metrics-port",
        type=flags.as_flag(flags.port),
        help=f"port of /metrics, /healthz, /readyz, /_profilis (env "
        f"PROFILIS_SIDECAR_METRICS_PORT; default {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument("--metrics-host", default="0.0.0.0", help="default 0.0.0.0")
    parser.add_argument(
        "--service",
        help="service label for agents that name none (env PROFILIS_SERVICE_NAME)",
    )
    parser.add_argument(
        "--worker-expiry",
        type=flags.as_flag(flags.seconds),
        default=30.0,
        metavar="SECONDS",
        help="forget a worker silent this long (default 30)",
    )
    parser.add_argument(
        "--max-datagram-bytes",
        type=flags.as_flag(flags.count),
        default=65_536,
        metavar="BYTES",
        help="refuse larger datagrams (default 65536)",
    )
    parser.add_argument(
        "--backlog-bytes",
        type=flags.as_flag(flags.count),
        default=16 << 20,
        metavar="BYTES",
        help="datagrams read and waiting to be processed, at most (default 16 MiB)",
    )
    parser.add_argument(
        "--ingest-rate-limit",
        type=flags.as_flag(flags.rate),
        metavar="PER_SECOND",
        help="read at most this many datagrams a second, so the agents' queues fill (for "
        "demos and for testing the queue alerts; env PROFILIS_SIDECAR_INGEST_RATE_LIMIT; "
        "default 0: unlimited)",
    )
    parser.add_argument(
        "--log-interval",
        type=flags.as_flag(flags.seconds),
        default=60.0,
        metavar="SECONDS",
        help="seconds between summary lines (default 60)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=flags.as_flag(flags.seconds),
        default=5.0,
        metavar="SECONDS",
        help="how long SIGTERM may take (default 5)",
    )
    parser.add_argument(
        "--socket-mode",
        type=flags.as_flag(flags.octal),
        default="666",  # argparse runs a string default through type: 0o666
        metavar="OCTAL",
        help="permissions of the Unix socket (default 666: any container of the pod)",
    )
    parser.add_argument(
        "--max-label-values",
        type=flags.as_flag(flags.count),
        default=1000,
        help="distinct values per label before __overflow__ (default 1000)",
    )
    parser.add_argument(
        "--max-series",
        type=flags.as_flag(flags.count),
        default=10_000,
        help="series per metric before __overflow__ (default 10000)",
    )
    parser.add_argument(
        "--max-label-length",
        type=flags.as_flag(flags.count),
        metavar="CHARS",
        help="longest label value before __overflow__ (env PROFILIS_SIDECAR_MAX_LABEL_LENGTH; "
        "default 256)",
    )
    parser.add_argument(
        "--series-budget",
        type=flags.as_flag(flags.count),
        metavar="SERIES",
        help="series of the request metrics in /metrics, each bucket counted, before "
        "__overflow__ (env PROFILIS_SIDECAR_SERIES_BUDGET; default 20000)",
    )
    parser.add_argument(
        "--max-workers",
        type=flags.as_flag(flags.count),
        metavar="N",
        help="agent processes tracked at once; more are refused (env "
        "PROFILIS_SIDECAR_MAX_WORKERS; default 1024)",
    )
    parser.add_argument(
        "--forward",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"also export events: {FORWARD_SPECS}; repeatable",
    )
    parser.add_argument(
        "--forward-queue-size",
        type=flags.as_flag(flags.count),
        default=65_536,
        help="events queued for forwarding (default 65536)",
    )
    parser.add_argument(
        "--ui-events-per-s",
        type=flags.as_flag(flags.events_rate),
        default=20_000.0,
        help="events a second shown on the /_profilis/ dashboard, 0 turns it off (default 20000)",
    )
    parser.add_argument(
        "--ui",
        action=argparse.BooleanOptionalAction,
        help="--ui (the default) serves the /_profilis/ page and its status.json, --no-ui "
        "turns both off; /metrics and the probes are served either way (env "
        "PROFILIS_SIDECAR_UI=on|off|token; token: only when PROFILIS_SIDECAR_UI_TOKEN is "
        "set)",
    )
    parser.add_argument(
        "--http-max-connections",
        type=flags.as_flag(flags.count),
        metavar="N",
        help="open connections to the metrics port; past it the longest-idle one is closed "
        "(env PROFILIS_SIDECAR_HTTP_MAX_CONNECTIONS; default 64)",
    )
    for name, default, what in (
        ("read-timeout", 10, "for a request's head to arrive"),
        ("idle-timeout", 90, "a kept-alive connection waits for its next request"),
        ("write-timeout", 30, "for a response to be written"),
    ):
        parser.add_argument(
            f"--http-{name}",
            type=flags.as_flag(flags.seconds),
            metavar="SECONDS",
            help=f"seconds {what} on the metrics port (env "
            f"PROFILIS_SIDECAR_HTTP_{name.upper().replace('-', '_')}; default {default})",
        )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    return parser


def _from_env(environ: Mapping[str, str], name: str, parse: Callable[[str], T]) -> T | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise SidecarError(f"{name}: {exc}") from None


def _flag_or_env(args: argparse.Namespace, environ: Mapping[str, str], setting: str) -> int:
    """A count setting from its flag, else ``PROFILIS_SIDECAR_<SETTING>``, else its default."""
    chosen: int | None = getattr(args, setting)
    if chosen is None:
        chosen = _from_env(environ, f"PROFILIS_SIDECAR_{setting.upper()}", flags.count)
    if chosen is None:
        default: int = getattr(SidecarSettings(), setting)
        return default
    return chosen


def _seconds_setting(args: argparse.Namespace, environ: Mapping[str, str], setting: str) -> float:
    """``http_<x>_timeout_s`` from ``--http-<x>-timeout``, else its variable, else the default."""
    chosen: float | None = getattr(args, setting.removesuffix("_s"))
    if chosen is None:
        variable = f"PROFILIS_SIDECAR_{setting.removesuffix('_s').upper()}"
        chosen = _from_env(environ, variable, flags.seconds)
    if chosen is None:
        default = next(f.default for f in fields(SidecarSettings) if f.name == setting)
        return float(default)  # type: ignore[arg-type]
    return chosen


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SidecarSettings:
    """Flags first, then the environment, then the defaults; ``SidecarError`` if invalid."""
    listen: list[CollectorAddress] | None = args.listen
    if not listen:
        listen = _from_env(
            environ,
            "PROFILIS_SIDECAR_LISTEN",
            lambda text: [flags.address(part) for part in text.split(",") if part.strip()],
        ) or [parse_collector_address(DEFAULT_LISTEN)]
    port = args.metrics_port
    if port is None:
        port = _from_env(environ, "PROFILIS_SIDECAR_METRICS_PORT", flags.port)
    rate_limit = args.ingest_rate_limit
    if rate_limit is None:
        rate_limit = _from_env(environ, "PROFILIS_SIDECAR_INGEST_RATE_LIMIT", flags.rate)
    service = args.service
    if service is None:
        try:
            service = load_config(environ).service_name
        except ConfigError as exc:
            raise SidecarError(str(exc)) from None
    return SidecarSettings(
        listen=tuple(listen),
        metrics_host=args.metrics_host,
        metrics_port=DEFAULT_METRICS_PORT if port is None else port,
        service=service,
        worker_expiry_s=args.worker_expiry,
        max_datagram_bytes=args.max_datagram_bytes,
        backlog_bytes=args.backlog_bytes,
        ingest_rate_limit=0.0 if rate_limit is None else rate_limit,
        log_interval_s=args.log_interval,
        drain_timeout_s=args.drain_timeout,
        socket_mode=args.socket_mode,
        max_label_values=args.max_label_values,
        max_series=args.max_series,
        forward_queue_size=args.forward_queue_size,
        max_label_length=_flag_or_env(args, environ, "max_label_length"),
        series_budget=_flag_or_env(args, environ, "series_budget"),
        max_workers=_flag_or_env(args, environ, "max_workers"),
        ui_events_per_s=args.ui_events_per_s,
        ui=args.ui if args.ui is not None else _ui_wanted(environ),
        http_max_connections=_flag_or_env(args, environ, "http_max_connections"),
        http_read_timeout_s=_seconds_setting(args, environ, "http_read_timeout_s"),
        http_idle_timeout_s=_seconds_setting(args, environ, "http_idle_timeout_s"),
        http_write_timeout_s=_seconds_setting(args, environ, "http_write_timeout_s"),
        # Environment only: a token in argv would show in `ps` and in the pod spec.
        ui_token=environ.get("PROFILIS_SIDECAR_UI_TOKEN") or None,
        pod_name=environ.get("POD_NAME") or None,
        pod_namespace=environ.get("POD_NAMESPACE") or None,
    )


def _ui_wanted(environ: Mapping[str, str]) -> bool:
    mode = _from_env(environ, "PROFILIS_SIDECAR_UI", flags.ui_switch) or "on"
    if mode == "token" and not environ.get("PROFILIS_SIDECAR_UI_TOKEN"):
        log.warning("the /_profilis/ page is off: PROFILIS_SIDECAR_UI=token and no token is set")
        return False
    return mode != "off"


def _forward_sinks(specs: Sequence[str], service: str) -> list[ForwardSink]:
    """The ``--forward`` exporters; ``SidecarError`` naming the spec if one cannot be built."""
    from profilis_sidecar.forward import build_forward_sink

    sinks = []
    for spec in specs:
        try:
            sinks.append(build_forward_sink(spec, service=service))
        except OSError as exc:  # jsonl:DIR that cannot be created
            raise SidecarError(f"--forward {spec!r}: {exc}") from None
    return sinks


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the sidecar until SIGTERM or SIGINT; 0 after a clean drain, 1 if it cannot start,
    2 for a bad flag, variable or ``--forward`` spec, or a missing extra (one line each)."""
    with requires_extra("profilis-sidecar", "sidecar"):
        from profilis_sidecar.sidecar import Sidecar
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    env = os.environ if environ is None else environ
    try:
        settings = settings_from_args(args, env)
        # Built (directories made, URLs checked) before anything starts, so a bad spec is a
        # usage error like a bad flag; no exporter starts a thread or a connection here.
        sinks = _forward_sinks(args.forward, settings.service)
    except (SidecarError, ConfigError) as exc:
        parser.error(str(exc))  # exits 2, naming the flag or variable
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before anything starts, so an early SIGTERM still drains what exists.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sidecar = Sidecar(settings, forward_sinks=sinks)
        sidecar.start()
    except SidecarError as exc:
        log.error("profilis-sidecar cannot start: %s", exc)
        return 1
    while not stop.wait(settings.log_interval_s):
        sidecar.log_summary()
    sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
