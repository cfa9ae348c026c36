"""Blob downloads from upstreams: one per digest, teed to storage and to every client.

The first request for an uncached blob starts a :class:`Download` in its own task (so a
client that hangs up does not abort it for the others). Its bytes go to the blob store
through :meth:`Blobs.ingest` and, as they arrive, to every client that joined before
the first byte came; a client joining later waits for the download to finish and reads
the stored blob. Concurrent requests for one digest thus cost one upstream GET.

Nothing partial is ever presented as complete: the blob is published only after its
digest checks out, and the last byte of the blob is held back from the clients until
then. A download that breaks off aborts the staged bytes; clients that already had
the status line lose the connection (their ``Content-Length`` is never reached), the
others get UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dockyard.core import BlobInfo, BlobStream, Registry
from dockyard.oci import Digest, ErrorCode, RegistryError
from dockyard.proxy.names import Route
from dockyard.proxy.upstream import UpstreamError, UpstreamNotFound

log = logging.getLogger("dockyard.proxy")

# Chunks a client may fall behind the download (64 MiB at _READ_SIZE) before the download
# waits for it; one that does not catch up within the upstream's read timeout is cut off.
MAX_BACKLOG = 256
# Upstream reads: large enough to keep per-chunk overhead low, small enough to stream.
_READ_SIZE = 256 << 10
# Chunks read ahead of the blob store's writes (64 MiB at _READ_SIZE).
_SPOOL_CHUNKS = 256

_End = None


class DownloadFailed(Exception):
    """The upstream download broke off or delivered the wrong bytes."""


@dataclass(eq=False, slots=True)
class _Subscriber:
    queue: asyncio.Queue[bytes | DownloadFailed | None] = field(default_factory=asyncio.Queue)
    # Set while the backlog is short enough for the download to go on.
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.room.set()

    async def get(self) -> bytes | DownloadFailed | None:
        item = await self.queue.get()
        if self.queue.qsize() <= MAX_BACKLOG // 2:
            self.room.set()
        return item


class Download:
    """One blob being fetched from an upstream (see the module docstring)."""

    def __init__(self, digest: Digest, size: int, patience: float) -> None:
        self.digest = digest
        self.size = size
        self.patience = patience
        self.repositories: list[str] = []
        self.started = False
        self.finished = asyncio.Event()
        self.error: DownloadFailed | None = None
        self._subscribers: set[_Subscriber] = set()

    def subscribe(self) -> _Subscriber:
        """A queue of this download's bytes from the first; only before any was sent."""
        assert not self.started
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)
        subscriber.room.set()  # a download waiting for this client need not

    async def publish(self, chunk: bytes) -> None:
        """Hand ``chunk`` to every subscriber; wait for those far behind, and cut off
        one that does not catch up within ``patience`` seconds."""
        if not chunk:
            return
        self.started = True
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(chunk)
            if subscriber.queue.qsize() >= MAX_BACKLOG:
                subscriber.room.clear()
        for subscriber in list(self._subscribers):
            if subscriber.room.is_set():
                continue
            try:
                await asyncio.wait_for(subscriber.room.wait(), self.patience)
            except TimeoutError:
                self._subscribers.discard(subscriber)
                subscriber.queue.put_nowait(DownloadFailed("client stopped reading"))

    def finish(self, error: DownloadFailed | None) -> None:
        """End every subscriber's stream, cleanly or with ``error``."""
        self.error = error
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(error if error is not None else _End)
        self._subscribers.clear()
        self.finished.set()


class BlobFetcher:
    """Single-flight, streaming blob downloads for one registry."""

    def __init__(self, core: Registry) -> None:
        self._core = core
        self._downloads: dict[Digest, Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def size_in_flight(self, digest: Digest) -> int | None:
        """The size of ``digest`` if it is being downloaded now."""
        download = self._downloads.get(digest)
        return None if download is None else download.size

    def stream(self, route: Route, digest: Digest, size: int) -> BlobStream:
        """The bytes of ``digest`` for ``route``'s client, fetched once for all clients."""

        def _stream(offset: int, length: int) -> AsyncIterator[bytes]:
            return self._read(route, digest, size, offset, length)

        return _stream

    async def close(self) -> None:
        """Cancel downloads in flight (server shutdown); nothing partial is kept."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _join(self, route: Route, digest: Digest, size: int) -> Download:
        download = self._downloads.get(digest)
        if download is None:
            download = Download(digest, size, route.upstream.settings.read_timeout)
            self._downloads[digest] = download
            task = asyncio.create_task(self._run(route, download))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if route.local not in download.repositories:
            download.repositories.append(route.local)
        return download

    async def _read(
        self, route: Route, digest: Digest, size: int, offset: int, length: int
    ) -> AsyncIterator[bytes]:
        if digest not in self._downloads:
            # Fetched meanwhile, between the client's stat and this read?
            stored = await self._core.blobs.adopt(route.local, digest, size)
            if stored is not None:
                async for chunk in self._core.blobs.read(stored, offset, length):
                    yield chunk
                return
        download = self._join(route, digest, size)
        if download.started:
            await download.finished.wait()
            if download.error is not None:
                raise _unavailable(route, digest, download.error)
            stored = BlobInfo(digest, size, None)
            async for chunk in self._core.blobs.read(stored, offset, length):
                yield chunk
            return
        subscriber = download.subscribe()
        position, end, sent = 0, offset + length, 0
        try:
            while position < end:
                item = await subscriber.get()
                if item is None:
                    break
                if isinstance(item, DownloadFailed):
                    if sent == 0:
                        raise _unavailable(route, digest, item)
                    # The status line and some bytes are out: only a broken connection
                    # tells the client the blob is incomplete.
                    raise ConnectionAbortedError(
                        f"upstream download of {digest} broke off after {sent} bytes: {item}"
                    )
                start, position = position, position + len(item)
                lo, hi = max(offset - start, 0), min(end - start, len(item))
                if hi > lo:
                    sent += hi - lo
                    yield item[lo:hi] if (lo, hi) != (0, len(item)) else item
        finally:
            download.unsubscribe(subscriber)

    async def _run(self, route: Route, download: Download) -> None:
        digest, size = download.digest, download.size
        tail = b""
        received = 0

        # The upstream is read (and the clients served) as fast as it sends; the store
        # writes at its own pace behind a bounded spool, so a slow disk does not slow
        # the first client until the spool is full.
        spool: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_SPOOL_CHUNKS)

        async def read(source: AsyncIterator[bytes]) -> None:
            nonlocal tail, received
            hold = size - 1  # the last byte waits for the digest check
            try:
                async for chunk in source:
                    start = received
                    received += len(chunk)
                    if received <= hold:
                        await download.publish(chunk)
                    else:
                        await download.publish(chunk[: max(hold - start, 0)])
                        tail += chunk[max(hold - start, 0) :]
                    await spool.put(chunk)
            except Exception as e:
                await spool.put(e)
            else:
                await spool.put(None)

        async def spooled() -> AsyncIterator[bytes]:
            while True:
                item = await spool.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        error: DownloadFailed | None = None
        try:
            async with route.upstream.open("GET", route.remote, f"blobs/{digest}") as response:
                if response.content_length not in (None, size):
                    raise DownloadFailed(
                        f"upstream sent {response.content_length} bytes for a {size}-byte blob"
                    )
                first = download.repositories[0]
                reader = asyncio.create_task(read(response.content.iter_chunked(_READ_SIZE)))
                try:
                    await self._core.blobs.ingest(first, digest, spooled(), size)
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
            await download.publish(tail)
            for repository in download.repositories[1:]:
                await self._core.blobs.adopt(repository, digest, size)
        except asyncio.CancelledError:
            error = DownloadFailed("the server is shutting down")
            raise
        except (UpstreamError, UpstreamNotFound) as e:
            error = DownloadFailed(str(e))
        except Exception as e:
            log.warning("download of %s from %s failed: %s", digest, route.upstream.name, e)
            error = DownloadFailed(f"{type(e).__name__}: {e}")
        finally:
            del self._downloads[digest]
            download.finish(error)


def _unavailable(route: Route, digest: Digest, error: Exception) -> RegistryError:
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        f"could not fetch {digest} from upstream {route.upstream.name!r} "
        f"({route.upstream.base}): {error}",
        detail={"upstream": route.upstream.name, "digest": str(digest)},
    )
