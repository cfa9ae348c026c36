"""The blob storage contract.

A :class:`BlobStore` holds blob bytes, content-addressed and shared by every
repository: one copy of a layer however many repositories use it. It knows nothing of
repositories, tags or HTTP; which repository may serve which blob is metadata's job.

Uploads are the only way bytes get in. An upload is a named, append-only staging area:
bytes are written at the current end (or the caller rewinds to the last committed
offset), then :meth:`BlobStore.commit_upload` verifies the digest and publishes the blob
under its content address atomically, or raises and publishes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from dockyard.oci.digest import Digest


class StorageError(Exception):
    """Base of the storage errors; none of them knows about HTTP."""


class BlobNotFound(StorageError):
    """The blob is not in the store."""


class UploadNotFound(StorageError):
    """The upload has no staged data (never started, committed or aborted)."""


class DigestMismatch(StorageError):
    """The uploaded bytes do not hash to the digest the client claimed."""

    def __init__(self, expected: Digest, actual: Digest) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"content hashes to {actual}, not {expected}")


class SizeLimitExceeded(StorageError):
    """A write went past the byte limit the caller set."""


class BlobStore(Protocol):
    """Where blob bytes live. Implementations: filesystem (default) and S3.

    All methods are safe to call concurrently for different uploads and blobs.
    """

    async def stat(self, digest: Digest) -> int:
        """Return the size of the stored blob; raise :class:`BlobNotFound`."""
        ...

    def local_path(self, digest: Digest) -> Path | None:
        """A local file holding the blob, for zero-copy ``sendfile``; None if not local.

        The path is only a hint: the file may vanish (deleted by GC) before it is opened.
        """
        ...

    async def redirect_url(self, digest: Digest) -> str | None:
        """A short-lived URL a client may GET the blob from directly, or None when the
        store does not hand out such URLs (then the blob is streamed through Dockyard).

        The URL is not checked for existence: the caller knows the blob from metadata.
        """
        ...

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes of the blob from ``offset`` (to the end when None).

        Raises :class:`BlobNotFound` on first iteration when the blob is absent.
        """
        ...

    async def delete(self, digest: Digest) -> None:
        """Remove the blob's bytes; a missing blob is not an error."""
        ...

    async def start_upload(self, upload_id: str) -> None:
        """Create an empty staging area named ``upload_id``."""
        ...

    async def write_upload(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], limit: int | None = None
    ) -> int:
        """Write ``chunks`` at ``offset`` and return the staged size afterwards.

        Bytes staged beyond ``offset`` by an earlier, interrupted write are discarded
        first, so ``offset`` (the caller's committed size) is always the truth. Raises
        :class:`UploadNotFound`, or :class:`SizeLimitExceeded` when more than ``limit``
        bytes arrive (what was written stays staged until the next write or abort).
        """
        ...

    async def commit_upload(self, upload_id: str, digest: Digest, size: int) -> None:
        """Verify the first ``size`` staged bytes hash to ``digest`` and publish them.

        Publication is atomic and durable: after return the blob is readable under
        ``digest``; on :class:`DigestMismatch` nothing is published and the staged
        data is removed. Raises :class:`UploadNotFound`.
        """
        ...

    async def abort_upload(self, upload_id: str) -> None:
        """Remove the staging area and everything in it; missing is not an error."""
        ...


@runtime_checkable
class BlobEnumerator(Protocol):
    """A store that can list what it holds (fsck compares it with the metadata)."""

    def list_blobs(self) -> AsyncIterator[Digest]:
        """Every blob stored, in no particular order; uploads in progress excluded."""
        ...
