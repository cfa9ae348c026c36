"""A BlobStore decorator that reports how long each operation takes.

Storage knows nothing of the metrics library: the caller passes ``observe``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.base import BlobEnumerator, BlobStore, StagingEnumerator

Observe = Callable[[str, float], None]


class TimedBlobStore:
    """Wraps a :class:`BlobStore`; calls ``observe(operation, seconds)`` after each call."""

    def __init__(self, inner: BlobStore, observe: Observe) -> None:
        self.inner = inner
        self._observe = observe

    async def stat(self, digest: Digest) -> int:
        start = time.perf_counter()
        try:
            return await self.inner.stat(digest)
        finally:
            self._observe("stat", time.perf_counter() - start)

    def local_path(self, digest: Digest) -> Path | None:
        return self.inner.local_path(digest)

    async def list_blobs(self) -> AsyncIterator[Digest]:
        """The inner store's listing (untimed: only fsck asks); nothing if it has none."""
        if isinstance(self.inner, BlobEnumerator):
            async for digest in self.inner.list_blobs():
                yield digest

    async def list_staging(self) -> list[tuple[str, float]]:
        """The inner store's staging areas (untimed: only GC asks); none if it cannot say."""
        if isinstance(self.inner, StagingEnumerator):
            return await self.inner.list_staging()
        return []

    async def remove_staging(self, upload_id: str) -> None:
        if isinstance(self.inner, StagingEnumerator):
            await self.inner.remove_staging(upload_id)

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self.inner.redirect_url(digest)

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        start = time.perf_counter()
        first = True
        async for chunk in self.inner.read(digest, offset, length):
            if first:
                self._observe("read_first_byte", time.perf_counter() - start)
                first = False
            yield chunk

    async def delete(self, digest: Digest) -> None:
        start = time.perf_counter()
        try:
            await self.inner.delete(digest)
        finally:
            self._observe("delete", time.perf_counter() - start)

    async def start_upload(self, upload_id: str) -> None:
        start = time.perf_counter()
        try:
            await self.inner.start_upload(upload_id)
        finally:
            self._observe("start_upload", time.perf_counter() - start)

    async def write_upload(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], limit: int | None = None
    ) -> int:
        start = time.perf_counter()
        try:
            return await self.inner.write_upload(upload_id, offset, chunks, limit)
        finally:
            self._observe("write_upload", time.perf_counter() - start)

    async def commit_upload(
        self, upload_id: str, digest: Digest, size: int, last: bytes = b""
    ) -> None:
        start = time.perf_counter()
        try:
            await self.inner.commit_upload(upload_id, digest, size, last)
        finally:
            self._observe("commit_upload", time.perf_counter() - start)

    async def abort_upload(self, upload_id: str) -> None:
        start = time.perf_counter()
        try:
            await self.inner.abort_upload(upload_id)
        finally:
            self._observe("abort_upload", time.perf_counter() - start)

    def import_dir(self) -> Path | None:
        return self.inner.import_dir()

    async def import_file(self, path: Path, digest: Digest, size: int) -> None:
        start = time.perf_counter()
        try:
            await self.inner.import_file(path, digest, size)
        finally:
            self._observe("import_file", time.perf_counter() - start)


def _conforms(store: TimedBlobStore) -> BlobStore:
    """Checked by mypy: TimedBlobStore implements the BlobStore protocol."""
    return store
