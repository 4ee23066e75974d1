"""Profilis: telemetry cheap enough to leave on, for Python web services.

The names below are the public API; integrations (Flask, ASGI, SQLAlchemy, exporters) live in
their own modules and import their frameworks only when used. Importing this package loads
the standard library and nothing else.
"""

from profilis._version import __version__
from profilis.config import CollectorAddress, Config, load_config
from profilis.core.async_collector import AsyncCollector, CollectorHealth
from profilis.core.emitter import Emitter
from profilis.decorators.profile import profile, profile_function
from profilis.errors import ConfigError, ProfilisError, SchemaError
from profilis.runtime import (
    SpanContext,
    current_span,
    format_traceparent,
    get_span_id,
    get_trace_id,
    parse_traceparent,
    use_span,
)
from profilis.schema import SCHEMA_VERSION, upgrade_event

__all__ = [
    "SCHEMA_VERSION",
    "AsyncCollector",
    "CollectorAddress",
    "CollectorHealth",
    "Config",
    "ConfigError",
    "Emitter",
    "ProfilisError",
    "SchemaError",
    "SpanContext",
    "__version__",
    "current_span",
    "format_traceparent",
    "get_span_id",
    "get_trace_id",
    "load_config",
    "parse_traceparent",
    "profile",
    "profile_function",
    "upgrade_event",
    "use_span",
]
