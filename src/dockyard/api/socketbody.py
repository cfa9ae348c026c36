"""Large request bodies read straight off the socket, in a worker thread.

aiohttp delivers a body on the event loop in 256 KiB chunks: each is copied out of the
kernel by the loop's core, then handed to a thread on the other core to be hashed and
written, by which time it has left the first core's cache. A store that writes local
files can instead take the body as a :class:`~dockyard.storage.DirectBody`: one worker
thread reads 1 MiB at a time from the socket and hashes and writes each piece while it
is still in that core's cache, with the event loop out of the way. Measured on a
2-core machine, a 256 MiB push went from about 790 MB/s to about 900 (see
docs/operations.md, "Receiving blobs").

Taking the socket over leaves aiohttp's HTTP parser in the middle of the body, so the
connection cannot carry another request: the response says ``Connection: close``
(:func:`close_if_taken`) and the client opens a new one. That costs one TCP handshake
per large body, which is why only bodies of at least ``DIRECT_MIN`` bytes are taken:
smaller ones, chunked or encoded ones, and anything over TLS go the usual way.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable

from aiohttp import web

# Bodies from this size up are read off the socket (when the store asks for it). Below
# it, the new connection each costs outweighs the faster copy: 8 MiB chunks pushed in
# 560-620 MB/s direct against 580-620 the usual way, 32 MiB ones 675-750 against 590-640.
DIRECT_MIN = 16 << 20
# What one read asks the kernel for: a piece that stays in the core's 2 MiB L2 cache
# between being received, hashed and written. 256 KiB reads ran at about 860 MB/s,
# 1 MiB at 980, 2 and 4 MiB at 550-670 (a bare socket-to-file copy on this machine).
_PIECE = 1 << 20
# How long the thread waits for more bytes before handing the wait to the event loop.
_THREAD_WAIT = 0.02

_TAKEN = web.RequestKey("socket_body_taken", bool)


def body_chunks(request: web.Request) -> AsyncIterable[bytes]:
    """The request body as it arrives, without buffering it whole: a stream of chunks,
    which a store may read straight off the socket when the body is large enough."""
    stream = request.content.iter_any()
    if _direct_ok(request):
        return SocketBody(request, stream)
    return stream


def _direct_ok(request: web.Request) -> bool:
    length = request.content_length
    if length is None or length < DIRECT_MIN:
        return False
    if "Transfer-Encoding" in request.headers or "Content-Encoding" in request.headers:
        return False
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    if transport.get_extra_info("ssl_object") is not None:
        return False
    return transport.get_extra_info("socket") is not None and hasattr(transport, "is_reading")


def taken(request: web.BaseRequest) -> bool:
    """Whether this request's body was read straight off the socket."""
    return request.get(_TAKEN) is True


def close_if_taken(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Before the response goes out: after a body was read off the socket, the
    connection closes with this response (the HTTP parser never saw the body end)."""
    if taken(request):
        # Called once aiohttp has computed the headers: the header is set here too.
        response.force_close()
        response.headers["Connection"] = "close"


class SocketBody:
    """A sized request body that is either iterated as aiohttp delivers it, or drained
    from the socket by :meth:`drain_into` (a :class:`~dockyard.storage.DirectBody`)."""

    def __init__(self, request: web.Request, stream: AsyncIterator[bytes]) -> None:
        self._request = request
        self._stream = stream
        length = request.content_length
        assert length is not None
        self._length = length

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream

    async def drain_into(self, sink: Callable[[memoryview], None]) -> int:
        head, fd = self._take_over()
        try:
            return await self._drain(head, fd, sink)
        finally:
            os.close(fd)

    async def _drain(self, head: list[bytes], fd: int, sink: Callable[[memoryview], None]) -> int:
        content = self._request.content
        remaining = self._length - content.total_bytes
        total = sum(map(len, head))
        buffer = memoryview(bytearray(_PIECE))
        stop = threading.Event()
        while True:
            work = asyncio.ensure_future(
                asyncio.to_thread(_pump, fd, buffer, head, remaining, sink, stop)
            )
            head = []
            try:
                read, blocked = await asyncio.shield(work)
            except asyncio.CancelledError:
                stop.set()
                await asyncio.wait({work})
                if not work.cancelled():
                    work.exception()  # seen: the cancellation is what propagates
                raise
            except ConnectionError:
                # The client is gone: no answer is owed, and none is attempted.
                transport = self._request.transport
                if transport is not None:
                    transport.close()
                raise
            remaining -= read
            total += read
            content.total_bytes += read  # for the request metrics
            if not remaining:
                return total
            if blocked:
                await _readable(fd)

    def _take_over(self) -> tuple[list[bytes], int]:
        """Stop aiohttp reading this connection; what it had read of the body already,
        and a descriptor of the socket's own.

        The body is read through a duplicate of aiohttp's descriptor, closed only once
        no thread uses it: should aiohttp close its own meanwhile (a shutdown), the
        number cannot be reused for another file under the reading thread. asyncio also
        refuses to watch a descriptor its transport owns; the duplicate it can watch.

        Runs without yielding to the loop, so no read of the transport can slip in.
        Reading the buffer empty may resume aiohttp's parser on bytes it held back
        (and the transport with it): it is drained until nothing more comes, then
        marked ended, then the transport is paused for good.
        """
        request = self._request
        content = request.content
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        head = []
        while data := content.read_nowait():
            head.append(data)
        # At EOF aiohttp does not wait to read the rest after the response; marking it
        # resumes the transport, so the pause comes last.
        content.feed_eof()
        transport.pause_reading()
        request[_TAKEN] = True
        return head, os.dup(transport.get_extra_info("socket").fileno())


def _pump(
    fd: int,
    buffer: memoryview,
    head: list[bytes],
    remaining: int,
    sink: Callable[[memoryview], None],
    stop: threading.Event,
) -> tuple[int, bool]:
    """In a worker thread: hand ``head`` and then up to ``remaining`` bytes read from
    ``fd`` to ``sink``. Returns the bytes read from ``fd``, and whether it stopped because
    none came for a while (the loop then waits for them instead of this thread)."""
    for data in head:
        sink(memoryview(data))
    read = 0
    while read < remaining and not stop.is_set():
        try:
            n = os.readv(fd, [buffer[: remaining - read]])
        except BlockingIOError:
            if _wait_readable(fd, _THREAD_WAIT):
                continue
            return read, True
        if n == 0:
            raise ConnectionResetError(
                f"the client closed the connection {remaining - read} bytes before the end"
            )
        sink(buffer[:n])
        read += n
    return read, False


def _wait_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(timeout * 1000))


async def _readable(fd: int) -> None:
    """Wait on the event loop until ``fd`` has bytes to read (or is closed)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, _set_done, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
