"""Blob downloads from upstreams: one per digest, spooled to a file every client follows.

The first request for an uncached blob starts a :class:`Download` in its own task (so a
client that hangs up does not abort it for the others). The download writes the bytes
to a spool file in large blocks, hashing them in the same pass (in a worker thread,
pipelined with the network reads); every client of that digest, whenever it came,
follows the spool file with ``sendfile`` as far as the bytes are written. Concurrent
requests for one digest thus cost one upstream GET, and a slow client holds no memory.

Nothing partial is ever presented as complete: the last byte is held back from every
client until the whole blob hashed to its digest. Then the clients finish while the
spool file moves into the blob store (a rename on the filesystem store) and is linked.
A download that breaks off removes the spool file; clients that already had the status
line lose the connection (their ``Content-Length`` is never reached), the others get
UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from dockyard.core import BlobInfo, BlobStream, FileRegion, Registry, open_for_reading
from dockyard.oci import Digest, ErrorCode, RegistryError, new_hasher
from dockyard.proxy.names import Route
from dockyard.proxy.upstream import UpstreamError, UpstreamNotFound
from dockyard.storage import cleanup
from dockyard.storage.hashwrite import BlockWriter

log = logging.getLogger("dockyard.proxy")

# Bytes gathered from the upstream before they are written and hashed in one go: at
# most _BLOCK, and at least _MIN_BLOCK unless the last block is still being written
# (then what there is waits). Large enough to keep the per-block cost (a thread hop,
# waking the clients) low, small enough that clients follow closely.
_BLOCK = 2 << 20
_MIN_BLOCK = 256 << 10
# A client waits up to _REGION_WAIT seconds for _REGION bytes before a sendfile: each
# call has a fixed cost far above that of sending a few more bytes.
_REGION = 1 << 20
_REGION_WAIT = 0.01
# Bytes fewer than _MIN_BLOCK wait at most this long to be written.
_STALL = 0.005


# Spool files are named so; one untouched for _LEFTOVER_AGE seconds belongs to a process
# that died mid-download (a live download writes, or times out, long before).
_SPOOL_PREFIX = "dockyard-spool-"
_LEFTOVER_AGE = 3600.0


class DownloadFailed(Exception):
    """The upstream download broke off or delivered the wrong bytes."""


class Download:
    """One blob being fetched from an upstream into a spool file (see the module
    docstring). ``written`` bytes of it are in the file; all of them, once ``verified``."""

    def __init__(self, digest: Digest, size: int, path: Path) -> None:
        self.digest = digest
        self.size = size
        self.path = path
        self.repositories: list[str] = []
        self.written = 0
        self.verified = False
        self.moved = False  # the spool file is gone: moved into the store, or removed
        self.finished = asyncio.Event()
        self.error: DownloadFailed | None = None
        self._progress = asyncio.Event()

    @property
    def readable(self) -> int:
        """How far clients may read: all but the last byte until the digest checks out."""
        return self.size if self.verified else min(self.written, self.size - 1)

    def progress(self) -> asyncio.Event:
        """An event set at the next change: more bytes, verification, or the end."""
        return self._progress

    def advance(self, written: int, *, verified: bool = False) -> None:
        self.written = written
        self.verified = verified
        self._changed()

    def finish(self, error: DownloadFailed | None) -> None:
        self.error = error
        self.finished.set()
        self._changed()

    async def open(self) -> BinaryIO | None:
        """The spool file opened for reading; None when it has moved or gone."""
        if self.moved:
            return None
        try:
            return await open_for_reading(self.path)
        except FileNotFoundError:
            return None

    def _changed(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()


class BlobFetcher:
    """Single-flight, streaming blob downloads for one registry."""

    def __init__(self, core: Registry) -> None:
        self._core = core
        self._downloads: dict[Digest, Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._spool_dir = core.blobs.spool_dir() or Path(tempfile.gettempdir())

    def size_in_flight(self, digest: Digest) -> int | None:
        """The size of ``digest`` if it is being downloaded now."""
        download = self._downloads.get(digest)
        return None if download is None else download.size

    def stream(self, route: Route, digest: Digest, size: int) -> BlobStream:
        """The bytes of ``digest`` for ``route``'s client, fetched once for all clients."""

        def _stream(offset: int, length: int) -> AsyncIterator[bytes | FileRegion]:
            return self._read(route, digest, size, offset, length)

        return _stream

    async def remove_leftovers(self) -> int:
        """Remove spool files a process that died mid-download left behind (untouched
        for _LEFTOVER_AGE seconds); return how many."""
        cutoff = time.time() - _LEFTOVER_AGE
        return await asyncio.to_thread(_remove_spools_before, self._spool_dir, cutoff)

    async def close(self) -> None:
        """Cancel downloads in flight (server shutdown); nothing partial is kept."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _join(self, route: Route, digest: Digest, size: int) -> Download:
        download = self._downloads.get(digest)
        if download is None:
            path = self._spool_dir / f"{_SPOOL_PREFIX}{uuid.uuid4().hex}"
            download = Download(digest, size, path)
            self._downloads[digest] = download
            task = asyncio.create_task(self._run(route, download))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if route.local not in download.repositories:
            download.repositories.append(route.local)
        return download

    async def _read(
        self, route: Route, digest: Digest, size: int, offset: int, length: int
    ) -> AsyncIterator[bytes | FileRegion]:
        if digest not in self._downloads:
            # Fetched meanwhile, between the client's stat and this read?
            stored = await self._core.blobs.adopt(route.local, digest, size)
            if stored is not None:
                async for chunk in self._core.blobs.read(stored, offset, length):
                    yield chunk
                return
        download = self._join(route, digest, size)
        position, end = offset, offset + length
        file: BinaryIO | None = None
        try:
            while position < end:
                progress = download.progress()
                limit = min(download.readable, end)
                if limit > position:
                    # The first bytes go at once; later ones in regions worth a sendfile.
                    short = limit - position < _REGION and limit < min(end, download.size - 1)
                    if short and position > offset:
                        await _more(download, min(position + _REGION, download.size))
                        limit = min(download.readable, end)
                    if file is None:
                        file = await download.open()
                        if file is None:
                            break  # in the store by now: the rest comes from there
                    yield FileRegion(file, position, limit - position)
                    position = limit
                elif download.error is not None:
                    raise _failed(route, download, sent=position > offset)
                else:
                    await progress.wait()
        finally:
            if file is not None:
                file.close()
        if position < end:
            await download.finished.wait()
            if download.error is not None:
                raise _failed(route, download, sent=position > offset)
            stored = BlobInfo(digest, size, None)
            async for chunk in self._core.blobs.read(stored, position, end - position):
                yield chunk

    async def _run(self, route: Route, download: Download) -> None:
        error: DownloadFailed | None = None
        try:
            await self._spool(route, download)
            download.moved = True
            first, *others = download.repositories
            await self._core.blobs.ingest_file(first, download.digest, download.path, download.size)
            for repository in others:
                await self._core.blobs.adopt(repository, download.digest, download.size)
        except asyncio.CancelledError:
            error = DownloadFailed("the server is shutting down")
            raise
        except DownloadFailed as e:
            error = e
        except (UpstreamError, UpstreamNotFound) as e:
            error = DownloadFailed(str(e))
        except Exception as e:
            log.warning(
                "download of %s from %s failed: %s", download.digest, route.upstream.name, e
            )
            error = DownloadFailed(f"{type(e).__name__}: {e}")
        finally:
            del self._downloads[download.digest]
            if error is not None:
                download.moved = True
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(download.path.unlink, missing_ok=True)
            download.finish(error)

    async def _spool(self, route: Route, download: Download) -> None:
        """Fetch the blob into its spool file and check its digest."""
        digest, size = download.digest, download.size
        hasher = new_hasher(digest.algorithm)
        fd = await asyncio.to_thread(
            os.open, download.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
        )
        # Blocks start as soon as the last one is written, so clients follow closely.
        writer = BlockWriter(
            fd,
            hasher,
            min_block=_MIN_BLOCK,
            max_waiting=_BLOCK,
            stall=_STALL,
            on_written=download.advance,
        )
        try:
            async with route.upstream.open("GET", route.remote, f"blobs/{digest}") as response:
                if response.content_length not in (None, size):
                    raise DownloadFailed(
                        f"upstream sent {response.content_length} bytes for a {size}-byte blob"
                    )
                received = 0
                # One buffered piece at a time: iter_any would join them (a copy).
                async for chunk, _ in response.content.iter_chunks():
                    received += len(chunk)
                    if received > size:
                        raise DownloadFailed(f"upstream sent more than {size} bytes")
                    await writer.add(chunk)
                await writer.finish()
            if received != size:
                raise DownloadFailed(f"upstream sent {received} of {size} bytes")
            actual = Digest(digest.algorithm, hasher.hexdigest())
            if actual != digest:
                raise DownloadFailed(f"upstream content hashes to {actual}")
            download.advance(size, verified=True)
        finally:
            await writer.settle()
            await cleanup.in_thread(os.close, fd)


def _remove_spools_before(directory: Path, cutoff: float) -> int:
    removed = 0
    for path in directory.glob(f"{_SPOOL_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


async def _more(download: Download, target: int) -> None:
    """Wait a moment for the spool to reach ``target`` bytes (or the download to end)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REGION_WAIT):
            while download.written < target and download.error is None:
                await download.progress().wait()


def _failed(route: Route, download: Download, *, sent: bool) -> Exception:
    """The error for a client of a download that failed: UNAVAILABLE before the status
    line went out; after it, only a broken connection tells the client."""
    assert download.error is not None
    if sent:
        return ConnectionAbortedError(
            f"upstream download of {download.digest} broke off: {download.error}"
        )
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        f"could not fetch {download.digest} from upstream {route.upstream.name!r} "
        f"({route.upstream.base}): {download.error}",
        detail={"upstream": route.upstream.name, "digest": str(download.digest)},
    )
