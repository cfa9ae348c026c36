"""Blob reads, deletes and cross-repository mounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dockyard.core import validation
from dockyard.core.lifecycle import Lifecycle, quota_error
from dockyard.core.regions import FileRegion
from dockyard.core.verify import verified
from dockyard.metadata import MetadataStore
from dockyard.metadata.lifecycle import BlobVanished, QuotaExceeded
from dockyard.oci import Digest, ErrorCode, RegistryError
from dockyard.storage import BlobNotFound, BlobStore

if TYPE_CHECKING:
    from dockyard.core.sources import Source

# Whether the caller may pull from a repository; the access-control feature supplies it.
CanRead = Callable[[str], Awaitable[bool]]


# ``(offset, length) -> bytes``: a blob's content while it is not in the store yet, as
# bytes or as regions of the local file it is being written to.
BlobStream = Callable[[int, int], AsyncIterator[bytes | FileRegion]]


async def _anyone(_repository: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A blob a repository may serve: its digest, size and, when local, its file.

    ``stream`` is set only for a blob a :class:`~dockyard.core.sources.Source` is still
    fetching: its bytes come from there, not from the store.
    """

    digest: Digest
    size: int
    path: Path | None
    stream: BlobStream | None = field(default=None, compare=False)


def still_stored(store: BlobStore, digest: Digest) -> Callable[[], Coroutine[Any, Any, bool]]:
    """A check, run inside the linking transaction, that the bytes are still stored."""

    async def present() -> bool:
        try:
            await store.stat(digest)
        except BlobNotFound:
            return False
        return True

    return present


class Blobs:
    """Blob operations, scoped by repository: a blob is served only where it is linked."""

    def __init__(self, store: BlobStore, meta: MetadataStore, lifecycle: Lifecycle) -> None:
        self._store = store
        self._meta = meta
        self._lifecycle = lifecycle
        self.source: Source | None = None

    async def stat(self, repository: str, raw_digest: str) -> BlobInfo:
        """The blob ``raw_digest`` as ``repository`` serves it; BLOB_UNKNOWN if it does not."""
        name = validation.repository_name(repository)
        digest = validation.digest(raw_digest)
        if self.source is not None and self.source.covers(name):
            return await self.source.stat_blob(name, digest)
        size = await self._meta.blob_size(name, str(digest))
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return BlobInfo(digest, size, self._store.local_path(digest))

    async def read(
        self, blob: BlobInfo, offset: int, length: int
    ) -> AsyncIterator[bytes | FileRegion]:
        """Stream ``length`` bytes of ``blob`` from ``offset``; a blob a source is still
        fetching may come as :class:`~dockyard.core.regions.FileRegion` items.

        A whole blob is verified on its way out (see :mod:`dockyard.core.verify`): if it
        is corrupt, :class:`~dockyard.core.verify.CorruptBlob` comes instead of its last
        chunk, and the blob is quarantined.
        """
        if blob.stream is not None:
            async for chunk in blob.stream(offset, length):
                yield chunk
            return
        chunks = self._store.read(blob.digest, offset, length)
        if offset == 0 and length == blob.size:
            chunks = verified(chunks, blob.digest, blob.size, self._lifecycle.quarantine)
        try:
            async for chunk in chunks:
                yield chunk
        except BlobNotFound:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, detail={"digest": str(blob.digest)}
            ) from None

    async def redirect_url(self, blob: BlobInfo) -> str | None:
        """Where the client may fetch ``blob`` directly (a presigned URL), or None."""
        return await self._store.redirect_url(blob.digest)

    def missing(self, blob: BlobInfo) -> RegistryError:
        """The error for a blob whose metadata exists but whose bytes are gone."""
        return RegistryError(
            ErrorCode.BLOB_UNKNOWN,
            "blob is registered but its content is missing from storage",
            detail={"digest": str(blob.digest)},
        )

    async def delete(self, repository: str, raw_digest: str) -> None:
        """Stop ``repository`` serving the blob. Bytes go later, when GC finds no users."""
        name = validation.repository_name(repository)
        digest = validation.digest(raw_digest)
        self._check_writable(name, "delete")
        if not await self._meta.unlink_blob(name, str(digest)):
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})

    async def mount(
        self,
        repository: str,
        raw_digest: str,
        source: str | None,
        can_read: CanRead = _anyone,
    ) -> BlobInfo | None:
        """Link a blob from ``source`` (or, when None, any readable repository) into
        ``repository``; None when that is not possible, and the caller falls back to an
        upload (spec.md, "Mounting a blob from another repository").

        The source must be readable by the caller: a mount never leaks a blob the caller
        could not pull itself.
        """
        name = validation.repository_name(repository)
        digest = validation.digest(raw_digest)
        self._check_writable(name, "push")
        if source is not None:
            candidates = [validation.repository_name(source)]
        else:
            candidates = await self._meta.repositories_with_blob(str(digest))
        for candidate in candidates:
            size = await self._meta.blob_size(candidate, str(digest))
            if size is None or not await can_read(candidate):
                continue
            try:
                await self._store.stat(digest)
            except BlobNotFound:
                return None
            # Links only while the blob's row exists: a sweep that got there first makes
            # this a fall-back to an upload, never a link to deleted bytes.
            try:
                linked = await self._lifecycle.links.link_existing_blob(
                    name, str(digest), self._lifecycle.quotas
                )
            except QuotaExceeded as e:
                raise quota_error(e) from None
            if linked is None:
                return None
            return BlobInfo(digest, linked, self._store.local_path(digest))
        return None

    def _check_writable(self, name: str, action: Literal["push", "delete"]) -> None:
        if self.source is not None and self.source.covers(name):
            raise self.source.refuse_write(name, action)

    async def adopt(self, repository: str, digest: Digest, size: int) -> BlobInfo | None:
        """Link a blob the store already holds into ``repository``, as a source found it
        there; None when the store has no such blob of that size. Not write-protected:
        for sources recording what they serve, never for clients."""
        try:
            if await self._store.stat(digest) != size:
                return None
        except BlobNotFound:
            return None
        if not await self._link_stored(repository, digest, size):
            return None
        return BlobInfo(digest, size, self._store.local_path(digest))

    async def ingest_file(self, repository: str, digest: Digest, path: Path, size: int) -> BlobInfo:
        """Store a blob fetched from elsewhere, from the local file ``path`` (its ``size``
        bytes already checked against ``digest``), and link it into ``repository``.

        The file is consumed. Not write-protected: for sources, never for clients.
        """
        await self._store.import_file(path, digest, size)
        if not await self._link_stored(repository, digest, size):
            raise RegistryError(
                ErrorCode.UNAVAILABLE,
                "the blob was garbage-collected while it was being cached; pull again",
                detail={"digest": str(digest)},
            )
        return BlobInfo(digest, size, self._store.local_path(digest))

    def spool_dir(self) -> Path | None:
        """Where a file for :meth:`ingest_file` is best written (None: anywhere)."""
        return self._store.import_dir()

    async def _link_stored(self, repository: str, digest: Digest, size: int) -> bool:
        """Link stored bytes through the GC-safe path (the link is made only while the
        bytes are still there); False when a sweep removed them first. Cached content
        counts against no quota."""

        try:
            await self._lifecycle.links.link_uploaded_blob(
                repository, str(digest), size, still_stored(self._store, digest), {}
            )
        except BlobVanished:
            return False
        return True
