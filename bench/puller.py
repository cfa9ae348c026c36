"""Whole-blob pulls with the cheapest receiver that still receives every byte.

At 2 GB/s an aiohttp client spends most of a core on bytes objects and stream buffers:
in the first full runs it used 95% of a core while 8 clients pulled from Dockyard, so the
pull figures measured the client. Here each client is a thread on a blocking socket that
``recv_into``s one preallocated 1 MiB buffer with ``MSG_WAITALL``: the kernel's copy is
the only per-byte cost, as in the loopback limit of machine.py, so a pull figure can be
compared with that limit directly. The HTTP is minimal: ``GET`` on a keep-alive
connection, status line and ``Content-Length`` parsed, body counted and dropped.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from yarl import URL

_BUFFER = 1 << 20
_HEAD_MAX = 64 << 10


class PullError(RuntimeError):
    """The registry did not answer a pull with 200 and a Content-Length."""


@dataclass(frozen=True, slots=True)
class PullResult:
    """Bytes received by all clients; wall time from the first request to the last byte."""

    received: int
    seconds: float


def _get(conn: socket.socket, request: bytes, buf: bytearray) -> int:
    """One GET on ``conn``: the body's length, after reading and dropping it."""
    conn.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(_HEAD_MAX)
        if not chunk:
            raise PullError("connection closed before the response head")
        head += chunk
    head, _, body = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if lines[0].split()[1] != "200":
        raise PullError(f"pull answered {lines[0]!r}")
    fields = dict(h.partition(":")[::2] for h in lines[1:])
    length = next((int(v) for k, v in fields.items() if k.lower() == "content-length"), None)
    if length is None:
        raise PullError("pull answered without Content-Length")
    view = memoryview(buf)
    remaining = length - len(body)
    while remaining > 0:
        n = conn.recv_into(view, min(len(buf), remaining), socket.MSG_WAITALL)
        if n == 0:
            raise PullError(f"connection closed with {remaining} bytes to go")
        remaining -= n
    return length


def pull(url: str, clients: int, repeats: int = 1) -> PullResult:
    """``clients`` threads each GET ``url`` whole ``repeats`` times on one connection."""
    target = URL(url)
    assert target.host is not None
    assert target.port is not None
    address = (target.host, target.port)
    request = (
        f"GET {target.raw_path_qs} HTTP/1.1\r\nHost: {target.raw_authority}\r\n"
        "Accept-Encoding: identity\r\n\r\n"
    ).encode()
    connections = [socket.create_connection(address) for _ in range(clients)]
    received = [0] * clients
    errors: list[BaseException] = []
    start_line = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        buf = bytearray(_BUFFER)
        try:
            start_line.wait()
            for _ in range(repeats):
                received[i] += _get(connections[i], request, buf)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        start_line.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    finally:
        for conn in connections:
            conn.close()
    if errors:
        raise errors[0]
    return PullResult(sum(received), seconds)
