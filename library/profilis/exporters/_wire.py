"""The agent -> sidecar wire format: one datagram holds one JSON envelope with one batch.

``encode_chunks`` and ``join_datagram`` are the sending half (``profilis.exporters.collector``
splits each batch so every datagram stays under a size limit); ``decode_envelope`` is the
receiving half (``profilis_sidecar``), which checks an untrusted datagram and names the
reason when it refuses one. orjson is used when it can be imported, else the json module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeAlias

from profilis.errors import ProfilisError

__all__ = [
    "DEFAULT_MAX_DATAGRAM_BYTES",
    "MAX_DATAGRAM_BYTES_LIMIT",
    "MIN_DATAGRAM_BYTES",
    "REJECT_REASONS",
    "WIRE_VERSION",
    "Chunks",
    "Envelope",
    "JsonCodec",
    "RejectReason",
    "WireError",
    "WireHealth",
    "datagram_size",
    "decode_envelope",
    "encode_chunks",
    "encode_header",
    "join_datagram",
    "load_codec",
]

WIRE_VERSION: Final = 2
#: The agent's default datagram limit: under UDP's 65,507-byte payload and far under what a
#: Unix datagram socket takes, so one setting works on both transports.
DEFAULT_MAX_DATAGRAM_BYTES: Final = 60_000
MIN_DATAGRAM_BYTES: Final = 512
MAX_DATAGRAM_BYTES_LIMIT: Final = 65_507

RejectReason: TypeAlias = Literal["oversized", "malformed", "version", "types"]
#: Why the sidecar refuses a datagram: larger than its limit; not a JSON object (or not
#: UTF-8); an envelope version other than ``WIRE_VERSION``; an envelope field of the wrong type.
REJECT_REASONS: Final[tuple[RejectReason, ...]] = ("oversized", "malformed", "version", "types")

_INT64_MAX: Final = 2**63 - 1
_PID_MAX: Final = 2**32 - 1
_SERVICE_MAX: Final = 255  # Config.service_name's limit
_VERSION_MAX: Final = 64
_EVENTS_KEY: Final = b',"events":'
_HEALTH_FIELDS: Final = (
    "queue_depth",
    "queue_capacity",
    "enqueued",
    "dropped_queue",
    "dropped_transport",
    "exported",
)

Buffer: TypeAlias = bytes | bytearray | memoryview


class WireError(ProfilisError, ValueError):
    """A datagram the sidecar refuses; ``events`` is how many events it carried, if known."""

    def __init__(self, reason: RejectReason, detail: str, events: int = 0) -> None:
        self.reason: RejectReason = reason
        self.events = events
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class WireHealth:
    """The sending process's counters, cumulative since it started (or forked)."""

    queue_depth: int = 0
    queue_capacity: int = 0
    enqueued: int = 0
    dropped_queue: int = 0
    dropped_transport: int = 0
    #: Events this process has handed to the socket, the enclosing datagram's included.
    exported: int = 0


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded datagram. ``events`` are as received: each still needs checking."""

    profilis_version: str
    service: str
    pid: int
    #: 1 for a process's first datagram that left it, +1 for each later one.
    seq: int
    events: list[object]
    health: WireHealth


class JsonCodec(NamedTuple):
    name: str
    #: Raises TypeError or ValueError for what cannot be encoded.
    dumps: Callable[[object], bytes]
    #: Raises ValueError (or RecursionError, json only) for what is not JSON.
    loads: Callable[[Buffer], object]


def load_codec(use_orjson: bool | None = None) -> JsonCodec:
    """orjson if importable (``use_orjson=None``), required (``True``) or refused (``False``).

    Imported here rather than at module import: the agent runs in any app image, and the
    library loads only the standard library until an exporter is actually built.
    """
    if use_orjson is not False:
        try:
            import orjson
        except ImportError:
            if use_orjson:
                raise
        else:
            return JsonCodec("orjson", orjson.dumps, orjson.loads)
    # Same output rules as orjson: compact, UTF-8, and NaN refused rather than written as
    # the non-JSON token ``NaN`` that the other side would reject.
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def dumps(obj: object) -> bytes:
        return encoder.encode(obj).encode("utf-8")

    def loads(data: Buffer) -> object:
        # Strict UTF-8: json.loads(bytes) would also guess UTF-16 and UTF-32.
        text = bytes(data).decode("utf-8")
        obj = decoder.decode(text)
        # orjson refuses a lone surrogate escape ("\ud800"); json makes it a str that no
        # UTF-8 output can hold: a label with one would break every later /metrics render.
        # Valid text holds no surrogate, so only an escape can make one: check only then.
        if _SURROGATE_ESCAPE.search(text) is not None:
            encoder.encode(obj).encode("utf-8")  # UnicodeEncodeError (a ValueError) if lone
        return obj

    return JsonCodec("json", dumps, loads)


# A \uD800-\uDFFF escape; also matches an escaped backslash before "ud8..", which only costs
# the check above.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# --------------------------------------------------------------------------- sending


def encode_header(
    dumps: Callable[[object], bytes],
    *,
    profilis_version: str,
    service: str,
    pid: int,
    seq: int,
    health: WireHealth,
) -> bytes:
    """The envelope without its events, as a complete JSON object."""
    return dumps(
        {
            "v": WIRE_VERSION,
            "profilis_version": profilis_version,
            "service": service,
            "pid": pid,
            "seq": seq,
            "health": {
                "queue_depth": health.queue_depth,
                "queue_capacity": health.queue_capacity,
                "enqueued": health.enqueued,
                "dropped_queue": health.dropped_queue,
                "dropped_transport": health.dropped_transport,
                "exported": health.exported,
            },
        }
    )


def join_datagram(header: bytes, events_json: bytes) -> bytes:
    """``header`` with ``"events": events_json`` added: the events are encoded only once."""
    return b"".join((header[:-1], _EVENTS_KEY, events_json, b"}"))


def datagram_size(header: bytes, events_json: bytes) -> int:
    return len(header) + len(_EVENTS_KEY) + len(events_json)


class Chunks(NamedTuple):
    #: (event count, the events as a JSON array) per datagram, in batch order.
    parts: list[tuple[int, bytes]]
    #: Single events larger than the budget on their own.
    oversized: int
    #: Events the codec could not encode (e.g. a non-JSON value, a lone surrogate).
    unencodable: int


def encode_chunks(
    events: Sequence[Mapping[str, Any]], dumps: Callable[[object], bytes], budget: int
) -> Chunks:
    """Split ``events`` into JSON arrays of at most ``budget`` bytes each.

    The common case is one ``dumps`` call. A batch over the budget is cut into as many
    even parts as its size suggests and each part is checked again; an event that is too
    large, or cannot be encoded, is left out and counted.
    """
    parts: list[tuple[int, bytes]] = []
    oversized = unencodable = 0
    pending: list[Sequence[Mapping[str, Any]]] = [events]
    while pending:
        group = pending.pop()
        try:
            data = dumps(group if isinstance(group, list) else list(group))
        except (TypeError, ValueError):
            if len(group) <= 1:
                unencodable += len(group)
                continue
            pieces = 2
        else:
            if len(data) <= budget:
                parts.append((len(group), data))
                continue
            if len(group) == 1:
                oversized += 1
                continue
            pieces = min(len(group), len(data) // budget + 1)
        size = -(-len(group) // pieces)
        # Pushed in reverse so they pop, and are sent, in batch order.
        for start in reversed(range(0, len(group), size)):
            pending.append(group[start : start + size])
    return Chunks(parts, oversized, unencodable)


# --------------------------------------------------------------------------- receiving


def decode_envelope(data: Buffer, *, codec: JsonCodec, max_bytes: int) -> Envelope:
    """Check one untrusted datagram and return its envelope, or raise ``WireError``.

    Only the envelope is checked here; events are checked by whoever reads them (the
    sidecar's metrics check only the fields they use, its forwarder the whole schema).
    Unknown envelope keys are ignored, so newer agents can add some.
    """
    if len(data) > max_bytes:
        raise WireError("oversized", f"{len(data)} bytes, the limit is {max_bytes}")
    try:
        envelope = codec.loads(data)
    except Exception as exc:  # JSON errors, bad UTF-8, nesting too deep: all just input
        raise WireError("malformed", f"not JSON ({type(exc).__name__})") from None
    if type(envelope) is not dict:
        raise WireError("malformed", "not a JSON object")
    events = envelope.get("events")
    count = len(events) if type(events) is list else 0
    if "v" not in envelope:
        raise WireError("malformed", "not an envelope (no v)", count)
    version = envelope.get("v")
    if type(version) is not int or version != WIRE_VERSION:
        raise WireError("version", f"v must be {WIRE_VERSION}", count)
    if type(events) is not list:
        raise WireError("types", "events must be a list")
    service = envelope.get("service")
    if type(service) is not str or not 0 < len(service) <= _SERVICE_MAX:
        raise WireError("types", "service must be a non-empty string", count)
    profilis_version = envelope.get("profilis_version")
    if type(profilis_version) is not str or len(profilis_version) > _VERSION_MAX:
        raise WireError("types", "profilis_version must be a short string", count)
    pid = _bounded_int(envelope, "pid", 1, _PID_MAX, count)
    seq = _bounded_int(envelope, "seq", 0, _INT64_MAX, count)  # DESIGN: 0 or 1 starts
    health = envelope.get("health")
    if type(health) is not dict:
        raise WireError("types", "health must be an object", count)
    values = [_bounded_int(health, name, 0, _INT64_MAX, count) for name in _HEALTH_FIELDS]
    return Envelope(profilis_version, service, pid, seq, events, WireHealth(*values))


def _bounded_int(source: dict[str, object], field: str, low: int, high: int, count: int) -> int:
    value = source.get(field)
    # Exact int: JSON true would otherwise pass as 1.
    if type(value) is int and low <= value <= high:
        return value
    raise WireError("types", f"{field} must be an integer in [{low}, {high}]", count)
