"""A receiver that answers every request one byte at a time: a slow-loris on the reply side.

Run as a script: ``python trickle_server.py PORT INTERVAL_S [LIFETIME_S] [head|body]``. It
binds 127.0.0.1:PORT, reads each request whole (headers and ``Content-Length`` body), then
sends a valid ``200`` answer one byte every INTERVAL_S, on its own thread per connection:
all of it (``head``, the default) or only its 64-byte body after the headers (``body``). It
stops by itself after LIFETIME_S (default 60), so a test that dies never leaves it behind.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n"
BODY_BYTES = 64


def _serve(conn: socket.socket, interval_s: float, mode: str) -> None:
    with conn:
        conn.settimeout(10.0)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            if mode == "body":
                conn.sendall(HEAD % BODY_BYTES)
                slow = b"\0" * BODY_BYTES
            else:
                slow = HEAD % 0
            for byte in slow:
                conn.sendall(bytes([byte]))
                time.sleep(interval_s)
        except OSError:
            return  # the client gave up: that is the point


def main() -> None:
    port, interval_s = int(sys.argv[1]), float(sys.argv[2])
    lifetime_s = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    mode = sys.argv[4] if len(sys.argv) > 4 else "head"
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(0.2)
    deadline = time.monotonic() + lifetime_s
    while time.monotonic() < deadline:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        threading.Thread(target=_serve, args=(conn, interval_s, mode), daemon=True).start()


if __name__ == "__main__":
    main()
