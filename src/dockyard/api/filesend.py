"""Sending a local file's bytes to a client: from a few sender threads, else ``sendfile``.

A sender thread reads the file and writes it to the socket 32 KiB at a time, the way
CNCF Distribution does, so the client copies bytes that are still in the CPU cache; with
``sendfile`` it copies page-cache pages from memory. Where the client is the slower
side (as on loopback) that decides the speed. Measured here with one client
reading 256 MiB on loopback (median of 5): 3,093 MB/s against 1,982 by
``loop.sendfile`` (Distribution 2,417), and 1,012 against 822 for a client that hashes
what it reads, at about the same server CPU per GiB as Distribution.

The threads are few (:data:`SENDERS` per process) and only ever copy: a transfer that
finds them all busy, a TLS connection, or a transport that still buffers bytes goes by
``loop.sendfile`` instead. A client that stops reading is given up on after
:data:`STALL_TIMEOUT` seconds; a cancelled transfer stops within a second. The thread
works on duplicates of both descriptors, so neither can be closed, and its number
reused, under it.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from aiohttp import web

SENDERS = 4
STALL_TIMEOUT = 60.0
_PIECE = 32 << 10
_READ = 256 << 10
_POLL_MS = 1000

_pool: ThreadPoolExecutor | None = None
_busy = 0


async def send_file(
    request: web.Request, file: BinaryIO, offset: int, count: int, *, copy: bool = True
) -> None:
    """Send ``count`` bytes of ``file`` from ``offset`` on ``request``'s connection (the
    response's headers already sent). ``copy=False`` always uses ``sendfile``: for a
    blob still being fetched, where the server's own CPU is the scarcer (measured: a
    cold pull through the cache took 0.95 CPU s per 256 MiB with sender threads
    against 0.60 s with ``sendfile``)."""
    global _pool, _busy
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away")
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    if (
        not copy
        or _busy >= SENDERS
        or sock is None
        or transport.get_extra_info("sslcontext") is not None
        or transport.get_write_buffer_size()
    ):
        await loop.sendfile(transport, file, offset, count)
        return
    if _pool is None:  # made on first use: in the worker process, after any fork
        _pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="dockyard-send")
    sock_fd, file_fd = os.dup(sock.fileno()), os.dup(file.fileno())
    stop = threading.Event()
    reading = transport.is_reading()
    transport.pause_reading()
    _busy += 1
    sending = loop.run_in_executor(_pool, _copy, sock_fd, file_fd, offset, count, stop)
    try:
        await asyncio.shield(sending)
    except asyncio.CancelledError:
        stop.set()  # the thread notices within _POLL_MS and closes its descriptors
        raise
    finally:
        _busy -= 1
        if reading and not transport.is_closing():
            transport.resume_reading()


def _copy(sock_fd: int, file_fd: int, offset: int, count: int, stop: threading.Event) -> None:
    try:
        buffer = memoryview(bytearray(min(_READ, count)))
        poller = select.poll()
        poller.register(sock_fd, select.POLLOUT)
        while count > 0 and not stop.is_set():
            got = os.preadv(file_fd, [buffer[: min(_READ, count)]], offset)
            if got == 0:
                raise EOFError(f"file ended {count} bytes short")
            sent = 0
            while sent < got:
                try:
                    sent += os.write(sock_fd, buffer[sent : min(sent + _PIECE, got)])
                except BlockingIOError:
                    _wait_writable(poller, stop)
            offset += got
            count -= got
    finally:
        os.close(sock_fd)
        os.close(file_fd)


def _wait_writable(poller: select.poll, stop: threading.Event) -> None:
    waited = 0
    while not poller.poll(_POLL_MS):
        waited += _POLL_MS
        if stop.is_set():
            raise ConnectionAbortedError("transfer cancelled")
        if waited >= STALL_TIMEOUT * 1000:
            raise TimeoutError(f"client read nothing for {STALL_TIMEOUT:.0f} s")
