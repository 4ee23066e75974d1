"""A tiny Neo4j stand-in speaking Bolt 4.4, so the real ``neo4j`` driver runs end to end.

No Neo4j server can run on the build machines. This one does the handshake, HELLO, RUN,
PULL, BEGIN/COMMIT/ROLLBACK, RESET and GOODBYE; every query returns one record ``[1]``, and a
query containing ``FAIL`` gets a syntax error, which is all the driver needs to publish its
results and raise its errors. Queries received are kept in ``received``. 127.0.0.1 only.
"""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["BoltServer", "bolt_server"]

_HELLO, _GOODBYE, _RESET, _RUN, _BEGIN, _COMMIT, _ROLLBACK, _PULL, _DISCARD = (
    0x01, 0x02, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x3F, 0x2F,
)  # fmt: skip
_SUCCESS, _RECORD, _IGNORED, _FAILURE = 0x70, 0x71, 0x7E, 0x7F
_BOLT_4_4 = b"\x00\x00\x04\x04"


class Struct:
    def __init__(self, tag: int, fields: list[Any]) -> None:
        self.tag, self.fields = tag, fields


def pack(value: Any) -> bytes:
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if -16 <= value < 128:
            return struct.pack(">b", value)
        return b"\xcb" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xc1" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return _header(len(data), 0x80, 0xD0) + data
    if isinstance(value, list):
        return _header(len(value), 0x90, 0xD4) + b"".join(map(pack, value))
    if isinstance(value, dict):
        items = b"".join(pack(k) + pack(v) for k, v in value.items())
        return _header(len(value), 0xA0, 0xD8) + items
    if isinstance(value, Struct):
        return bytes([0xB0 + len(value.fields), value.tag]) + b"".join(map(pack, value.fields))
    raise TypeError(value)


def _header(size: int, tiny: int, sized: int) -> bytes:
    if size < 16:
        return bytes([tiny + size])
    return bytes([sized + 2]) + struct.pack(">I", size)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def value(self) -> Any:
        marker = self.take(1)[0]
        if marker < 0x80 or marker >= 0xF0:
            return struct.unpack(">b", bytes([marker]))[0]
        high = marker & 0xF0
        if high in (0x80, 0x90, 0xA0, 0xB0):
            return self._sized(high, marker & 0x0F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if marker in simple:
            return simple[marker]
        if marker == 0xC1:
            return struct.unpack(">d", self.take(8))[0]
        ints = {0xC8: ">b", 0xC9: ">h", 0xCA: ">i", 0xCB: ">q"}
        if marker in ints:
            fmt = ints[marker]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        kinds = {0xD0: 0x80, 0xD4: 0x90, 0xD8: 0xA0}
        base = marker & 0xFC
        width = {0: ">B", 1: ">H", 2: ">I"}[marker & 0x03]
        size = struct.unpack(width, self.take(struct.calcsize(width)))[0]
        return self._sized(kinds[base], size)

    def _sized(self, kind: int, size: int) -> Any:
        if kind == 0x80:
            return self.take(size).decode()
        if kind == 0x90:
            return [self.value() for _ in range(size)]
        if kind == 0xA0:
            return {self.value(): self.value() for _ in range(size)}
        tag = self.take(1)[0]
        return Struct(tag, [self.value() for _ in range(size)])


class _Handler(socketserver.BaseRequestHandler):
    server: BoltServer

    def handle(self) -> None:
        if self._read(20) is None:  # magic and four version offers: we take 4.4
            return
        self.request.sendall(_BOLT_4_4)
        failed = False
        while (message := self._message()) is not None:
            if message.tag == _GOODBYE:
                return
            if message.tag == _RESET:
                failed = False
                self._send(_SUCCESS, {})
            elif failed:
                self._send(_IGNORED)
            elif message.tag == _HELLO:
                self._send(_SUCCESS, {"server": "Neo4j/4.4.0", "connection_id": "bolt-1"})
            elif message.tag == _RUN:
                query = message.fields[0]
                self.server.received.append(query)
                if "FAIL" in query:
                    failed = True
                    code = "Neo.ClientError.Statement.SyntaxError"
                    self._send(_FAILURE, {"code": code, "message": "Invalid input"})
                else:
                    self._send(_SUCCESS, {"fields": ["n"], "t_first": 1, "qid": 0})
            elif message.tag in (_PULL, _DISCARD):
                if message.tag == _PULL:
                    self._send(_RECORD, [1])
                self._send(_SUCCESS, {"has_more": False, "type": "rw", "t_last": 1, "db": "neo4j"})
            elif message.tag == _COMMIT:
                self._send(_SUCCESS, {"bookmark": "bm:1"})
            else:  # BEGIN, ROLLBACK
                self._send(_SUCCESS, {})

    def _message(self) -> Struct | None:
        data = b""
        while True:
            header = self._read(2)
            if header is None:
                return None
            size = struct.unpack(">H", header)[0]
            if size == 0:
                if data:
                    message = _Reader(data).value()
                    assert isinstance(message, Struct)
                    return message
                continue  # a NOOP chunk
            chunk = self._read(size)
            if chunk is None:
                return None
            data += chunk

    def _send(self, tag: int, *fields: Any) -> None:
        data = pack(Struct(tag, list(fields)))
        self.request.sendall(struct.pack(">H", len(data)) + data + b"\x00\x00")

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class BoltServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[str] = []


@contextmanager
def bolt_server() -> Iterator[tuple[str, BoltServer]]:
    """Serve on a free loopback port; yields a ``bolt://`` URI and the server."""
    server = BoltServer()
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="bolt-wire", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"bolt://{host}:{port}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
