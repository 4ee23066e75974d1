"""A tiny MongoDB stand-in that speaks the wire protocol, so the real PyMongo client runs.

No MongoDB server can run on the build machines. This one answers the handshake (OP_QUERY
or OP_MSG ``hello``), ``insert``, ``find`` (equality filters), ``delete``, ``endSessions``,
and fails ``find`` on the ``forbidden`` collection with a server error, which is all the
tests need to see PyMongo publish its command events. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import datetime
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bson
from bson.int64 import Int64

__all__ = ["mongo_wire_server"]

_OP_REPLY, _OP_QUERY, _OP_MSG = 1, 2004, 2013
_HEADER = struct.Struct("<iiii")


def _hello() -> dict[str, Any]:
    return {
        "helloOk": True,
        "ismaster": True,
        "isWritablePrimary": True,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": datetime.datetime.now(datetime.timezone.utc),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "readOnly": False,
        "ok": 1.0,
    }


class _Store:
    def __init__(self) -> None:
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def run(self, command: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(command))
        if name.lower() in ("hello", "ismaster"):
            return _hello()
        if name == "insert":
            with self.lock:
                self.collections.setdefault(command["insert"], []).extend(command["documents"])
            return {"n": len(command["documents"]), "ok": 1.0}
        if name == "find":
            if command["find"] == "forbidden":
                return {
                    "ok": 0.0,
                    "errmsg": "not authorized",
                    "code": 13,
                    "codeName": "Unauthorized",
                }
            wanted = command.get("filter") or {}
            with self.lock:
                docs = [
                    doc
                    for doc in self.collections.get(command["find"], [])
                    if all(doc.get(k) == v for k, v in wanted.items())
                ]
            ns = f"{command['$db']}.{command['find']}"
            return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": docs}, "ok": 1.0}
        if name == "delete":
            with self.lock:
                docs = self.collections.get(command["delete"], [])
                wanted = command["deletes"][0]["q"]
                kept = [d for d in docs if not all(d.get(k) == v for k, v in wanted.items())]
                self.collections[command["delete"]] = kept
            return {"n": len(docs) - len(kept), "ok": 1.0}
        return {"ok": 1.0}  # endSessions, ping, and the rest: nothing to do


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        while True:
            header = self._read(16)
            if header is None:
                return
            length, request_id, _, op_code = _HEADER.unpack(header)
            body = self._read(length - 16)
            if body is None:
                return
            if op_code == _OP_QUERY:
                # flags, collection name (cstring), skip, limit, then the command document
                start = body.index(b"\0", 4) + 9
                size = struct.unpack("<i", body[start : start + 4])[0]
                command = bson.decode(body[start : start + size])
                reply = bson.encode(self.server.store.run(command))
                payload = struct.pack("<iqii", 0, 0, 0, 1) + reply
                op = _OP_REPLY
            else:
                reply = bson.encode(self.server.store.run(_parse_msg(body)))
                payload = struct.pack("<I", 0) + b"\0" + reply
                op = _OP_MSG
            self.request.sendall(_HEADER.pack(16 + len(payload), 0, request_id, op) + payload)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def _parse_msg(body: bytes) -> dict[str, Any]:
    """An OP_MSG's command: the kind-0 document plus its kind-1 document sequences."""
    flags = struct.unpack("<I", body[:4])[0]
    end = len(body) - (4 if flags & 1 else 0)
    position, command = 4, {}
    while position < end:
        kind = body[position]
        position += 1
        size = struct.unpack("<i", body[position : position + 4])[0]
        if kind == 0:
            command = {**bson.decode(body[position : position + size]), **command}
        else:
            section = body[position + 4 : position + size]
            name_end = section.index(b"\0")
            command[section[:name_end].decode()] = bson.decode_all(section[name_end + 1 :])
        position += size
    return command


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.store = _Store()


@contextmanager
def mongo_wire_server() -> Iterator[str]:
    """Serve on a free loopback port; yields a ``mongodb://`` URI for a direct connection."""
    server = _Server()
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="mongo-wire", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"mongodb://{host}:{port}/?directConnection=true&serverSelectionTimeoutMS=5000"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
