"""Blob reads, deletes and cross-repository mounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.core import validation
from dockyard.metadata import MetadataStore
from dockyard.oci import Digest, ErrorCode, RegistryError
from dockyard.storage import BlobNotFound, BlobStore

# Whether the caller may pull from a repository; the access-control feature supplies it.
CanRead = Callable[[str], Awaitable[bool]]


async def _anyone(_repository: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A blob a repository may serve: its digest, size and, when local, its file."""

    digest: Digest
    size: int
    path: Path | None


class Blobs:
    """Blob operations, scoped by repository: a blob is served only where it is linked."""

    def __init__(self, store: BlobStore, meta: MetadataStore) -> None:
        self._store = store
        self._meta = meta

    async def stat(self, repository: str, raw_digest: str) -> BlobInfo:
        """The blob ``raw_digest`` as ``repository`` serves it; BLOB_UNKNOWN if it does not."""
        name = validation.repository_name(repository)
        digest = validation.digest(raw_digest)
        size = await self._meta.blob_size(name, str(digest))
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return BlobInfo(digest, size, self._store.local_path(digest))

    async def read(self, blob: BlobInfo, offset: int, length: int) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes of ``blob`` from ``offset``."""
        try:
            async for chunk in self._store.read(blob.digest, offset, length):
                yield chunk
        except BlobNotFound:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, detail={"digest": str(blob.digest)}
            ) from None

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
            await self._meta.link_blob(name, str(digest), size)
            return BlobInfo(digest, size, self._store.local_path(digest))
        return None
