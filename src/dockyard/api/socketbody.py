"""Large request bodies read straight off the socket, in a worker thread.

aiohttp delivers a body on the event loop in 256 KiB chunks: each is copied out of the
kernel by the loop's core, then handed to a thread on the other core to be hashed and
written, by which time it has left the first core's cache. A store that writes local
files can instead take the body as a :class:`~dockyard.storage.DirectBody`: one worker
thread reads 1 MiB at a time from the socket and hashes and writes each piece while it
is still in that core's cache, with the event loop out of the way. The store opens,
writes and closes its file in that same thread (a :class:`~dockyard.storage.BodySink`),
so a chunk costs one trip to a thread in all. Measured on a 2-core machine, a 256 MiB
push went from about 790 MB/s to about 900, and one in 8 MiB chunks from about 580 to
about 670 (see docs/operations.md, "Receiving blobs").

Taking the socket over leaves aiohttp's HTTP parser in the middle of the body. Once the
whole body has been read, the parser is replaced by a fresh one, made the way aiohttp
makes it for a new connection (:func:`_resume_parsing`), and reading resumes: the next
request on the connection is parsed as usual, so a client pushing a layer in chunks keeps
one connection for all of them. Where that cannot be done (the body was not read to its
end: the client went away, the sink failed, the request was cancelled; or the running
aiohttp does not build its parser the way this module expects), the response says
``Connection: close`` (:func:`close_if_taken`) and the client opens a new connection.

The rest of a body whose sink failed part-way is read and dropped, as aiohttp does for a
body a handler left unread, so that the client gets the error rather than a reset.

Smaller bodies, chunked or encoded ones, and anything over TLS go the usual way.
"""

from __future__ import annotations

import asyncio
import enum
import os
import select
import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web, web_protocol

# Bodies from this size up are read off the socket (when the store asks for it). A 256
# MiB push in 4 MiB chunks ran at 580-660 MB/s direct against 445-480 the usual way; in
# 2 MiB chunks the two were even (about 420-440), in 1 MiB chunks the usual way led.
DIRECT_MIN = 4 << 20
# What one read asks the kernel for: a piece that stays in the core's 2 MiB L2 cache
# between being received, hashed and written. 256 KiB reads ran at about 860 MB/s,
# 1 MiB at 980, 2 and 4 MiB at 550-670 (a bare socket-to-file copy on this machine).
_PIECE = 1 << 20
# Read buffers kept for the next drains (a fresh 1 MiB buffer is zeroed on the loop):
# as many as bodies drained at once, up to this many.
_BUFFERS: list[memoryview] = []
_BUFFERS_KEPT = 8
# How long the thread waits for more bytes before handing the wait to the event loop.
_THREAD_WAIT = 0.02
# After the sink failed, how long the rest of the body is read and dropped before the
# connection is closed instead (aiohttp's lingering time for a body a handler left).
_LINGER = 10.0

# Set once a body is taken off the socket (counted by the metrics).
_TAKEN = web.RequestKey("socket_body_taken", bool)
# True while a body taken off the socket has left aiohttp's parser mid-body: the
# answer then closes the connection.
_UNREAD = web.RequestKey("socket_body_unread", bool)


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
    return _TAKEN in request


def close_if_taken(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Before the response goes out: if a body taken off the socket left the HTTP
    parser mid-body (see the module docstring), the connection closes with this
    response."""
    if request.get(_UNREAD) is True:
        # Called once aiohttp has computed the headers: the header is set here too.
        response.force_close()
        response.headers["Connection"] = "close"


class Sink(Protocol):
    """What :meth:`SocketBody.drain_into` hands the body to, every call in the reading
    thread (a :class:`dockyard.storage.BodySink`)."""

    def begin(self) -> bool: ...

    def __call__(self, piece: memoryview) -> None: ...

    def end(self) -> None: ...


class _Outcome(enum.Enum):
    DONE = enum.auto()  # the whole body was handed over
    BLOCKED = enum.auto()  # no bytes came for a while: the loop waits for them
    NOT_READY = enum.auto()  # the sink said not yet; nothing was read
    STOPPED = enum.auto()  # asked to stop


@dataclass(slots=True)
class _Progress:
    """Where a drain stands, between trips of the reading thread."""

    head: list[bytes]  # read by aiohttp before the take-over, not yet handed over
    remaining: int  # still to read off the socket
    begun: bool = False
    read: int = 0  # off the socket, on the last trip


class _Drop:
    """A sink that keeps nothing: what is left of a body after its sink failed."""

    def begin(self) -> bool:
        return True

    def __call__(self, piece: memoryview) -> None:
        pass

    def end(self) -> None:
        pass


_DROP = _Drop()


class SocketBody:
    """A sized request body that is either iterated as aiohttp delivers it, or drained
    from the socket by :meth:`drain_into` (a :class:`~dockyard.storage.DirectBody`)."""

    def __init__(self, request: web.Request, stream: AsyncIterator[bytes]) -> None:
        self._request = request
        self._stream = stream
        length = request.content_length
        assert length is not None
        self._length = length
        self._progress: _Progress | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream

    async def drain_into(self, sink: Sink) -> int | None:
        if self._progress is None:
            self._progress = self._take_over()
        fd = self._own_descriptor()
        try:
            return await self._drain(self._progress, fd, sink)
        finally:
            os.close(fd)

    async def _drain(self, progress: _Progress, fd: int, sink: Sink) -> int | None:
        buffer = _BUFFERS.pop() if _BUFFERS else memoryview(bytearray(_PIECE))
        try:
            outcome = await self._read(progress, fd, buffer, sink)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            # The sink failed part-way (a full disk, say): the client is still sending.
            # Read the rest and drop it, as aiohttp does for a body a handler left, so
            # that the client reads the answer rather than a reset connection.
            await self._discard(progress, fd, buffer)
            raise
        finally:
            # No thread reads into it any more (_read waits for its thread to stop).
            if len(_BUFFERS) < _BUFFERS_KEPT:
                _BUFFERS.append(buffer)
        if outcome is _Outcome.NOT_READY:
            return None
        assert outcome is _Outcome.DONE  # STOPPED only ever follows a cancellation
        self._carry_on()
        return self._length

    async def _read(self, progress: _Progress, fd: int, buffer: memoryview, sink: Sink) -> _Outcome:
        """Run :func:`_pump` in worker threads until it is done or the sink not ready,
        waiting on the event loop whenever the client pauses."""
        request = self._request
        stop = threading.Event()
        while True:
            work = asyncio.ensure_future(asyncio.to_thread(_pump, fd, buffer, progress, sink, stop))
            try:
                outcome = await asyncio.shield(work)
            except asyncio.CancelledError:
                stop.set()
                await asyncio.wait({work})
                if not work.cancelled():
                    work.exception()  # seen: the cancellation is what propagates
                raise
            except ConnectionError:
                # The client is gone: no answer is owed, and none is attempted.
                transport = request.transport
                if transport is not None:
                    transport.close()
                raise
            finally:
                request.content.total_bytes += progress.read  # for the request metrics
                progress.read = 0
            if outcome is not _Outcome.BLOCKED:
                return outcome
            await _readable(fd)

    async def _discard(self, progress: _Progress, fd: int, buffer: memoryview) -> None:
        """Read what is left of the body and drop it, for up to ``_LINGER`` seconds;
        the connection carries on if all of it came."""
        try:
            async with asyncio.timeout(_LINGER):
                await self._read(progress, fd, buffer, _DROP)
        except (TimeoutError, ConnectionError):
            return  # the answer closes the connection
        self._carry_on()

    def _carry_on(self) -> None:
        """The whole body was read: the connection can take the next request."""
        if self._request.get(_UNREAD) and _resume_parsing(self._request):
            self._request[_UNREAD] = False

    def _take_over(self) -> _Progress:
        """Stop aiohttp reading this connection; what it had read of the body already.

        Runs without yielding to the loop, so no read of the transport can slip in.
        Reading the buffer empty may resume aiohttp's parser on bytes it held back
        (and the transport with it): it is drained until nothing more comes, then
        marked ended, then the transport is paused until the body is read.
        """
        request = self._request
        content = request.content
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        head = []
        while data := content.read_nowait():
            head.append(data)
        request[_TAKEN] = True
        if content.total_bytes < self._length:
            # The parser stopped mid-body; until the body is read to its end and the
            # parser replaced, the connection cannot carry another request.
            request[_UNREAD] = True
            # At EOF aiohttp does not wait to read the rest after the response; marking
            # it resumes the transport, so the pause comes last.
            content.feed_eof()
            transport.pause_reading()
        return _Progress(head, self._length - content.total_bytes)

    def _own_descriptor(self) -> int:
        """A duplicate of the connection's descriptor, for this drain to read from.

        Closed only once no thread uses it: should aiohttp close its own meanwhile (a
        shutdown), the number cannot be reused for another file under the reading
        thread. asyncio also refuses to watch a descriptor its transport owns; the
        duplicate it can watch.
        """
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        return os.dup(transport.get_extra_info("socket").fileno())


def _resume_parsing(request: web.Request) -> bool:
    """After a body was read to its end off the socket: give the connection a fresh
    HTTP parser, built as aiohttp builds one for a new connection, and resume reading.
    False (the connection then closes) if this aiohttp is not laid out as expected."""
    protocol = request.protocol
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    try:
        # Private to aiohttp (tests/api/test_socket_body.py checks the connection is
        # kept): the connection's parser, stopped mid-body, is replaced.
        current = protocol._parser
        if current is None:
            return False
        parser = type(current)(
            protocol,
            asyncio.get_running_loop(),
            protocol._read_bufsize,
            max_line_size=protocol.max_line_size,
            max_field_size=protocol.max_field_size,
            max_headers=protocol.max_headers,
            payload_exception=web_protocol.RequestPayloadError,
            max_msg_queue_size=protocol._max_msg_queue_size,
        )
    except (AttributeError, TypeError):
        return False
    protocol._parser = parser
    transport.resume_reading()
    return True


def _pump(
    fd: int, buffer: memoryview, progress: _Progress, sink: Sink, stop: threading.Event
) -> _Outcome:
    """In a worker thread: begin ``sink`` (once), hand it what aiohttp had read, then
    what is read from ``fd`` until the body ends, then end it. Returns early when the
    sink is not ready, when asked to stop, or when no bytes came for a while (the loop
    then waits for them instead of this thread)."""
    if not progress.begun:
        if not sink.begin():
            return _Outcome.NOT_READY
        progress.begun = True
    while progress.head:
        sink(memoryview(progress.head.pop(0)))
    while progress.remaining:
        if stop.is_set():
            return _Outcome.STOPPED
        try:
            n = os.readv(fd, [buffer[: progress.remaining]])
        except BlockingIOError:
            if _wait_readable(fd, _THREAD_WAIT):
                continue
            return _Outcome.BLOCKED
        if n == 0:
            raise ConnectionResetError(
                f"the client closed the connection {progress.remaining} bytes before the end"
            )
        progress.read += n
        progress.remaining -= n
        sink(buffer[:n])
    sink.end()
    return _Outcome.DONE


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
