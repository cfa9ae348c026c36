"""The blob storage contract.

A :class:`BlobStore` holds blob bytes, content-addressed and shared by every
repository: one copy of a layer however many repositories use it. It knows nothing of
repositories, tags or HTTP; which repository may serve which blob is metadata's job.

Uploads are the only way bytes get in. An upload is a named, append-only staging area:
bytes are written at the current end (or the caller rewinds to the last committed
offset), then :meth:`BlobStore.commit_upload` verifies the digest and publishes the blob
under its content address atomically, or raises and publishes nothing. A complete local
file a caller has already verified (the pull-through cache's spool) comes in through
:meth:`BlobStore.import_file` instead, moved rather than copied where the store can.
"""

from __future__ import annotations

import asyncio
import uuid
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
        """Open an empty staging area named ``upload_id``.

        A store may create it lazily, with the first write at offset 0 (or an empty
        commit): writing at 0 to an upload that is gone then starts it afresh instead
        of raising :class:`UploadNotFound`. The caller knows which sessions are open
        (the metadata) and writes only to those.
        """
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

    async def commit_upload(
        self, upload_id: str, digest: Digest, size: int, last: bytes = b""
    ) -> None:
        """Verify the first ``size`` staged bytes hash to ``digest`` and publish them.

        ``last``, when not empty, is the upload's closing chunk: it is first written at
        ``size - len(last)`` as by :meth:`write_upload`, so a small blob is written and
        published in one step.

        Publication is atomic and durable: after return the blob is readable under
        ``digest``; on :class:`DigestMismatch` nothing is published and the staged
        data is removed. Raises :class:`UploadNotFound`.
        """
        ...

    async def abort_upload(self, upload_id: str) -> None:
        """Remove the staging area and everything in it; missing is not an error."""
        ...

    def import_dir(self) -> Path | None:
        """A local directory where a file meant for :meth:`import_file` is best built
        (on the store's own filesystem, so the import is a rename); None: anywhere."""
        ...

    async def import_file(self, path: Path, digest: Digest, size: int) -> None:
        """Publish the complete local file ``path`` as blob ``digest``, atomically and
        durably; the file is consumed (moved into place, or removed once copied).

        The caller has checked that its ``size`` bytes hash to ``digest``; a store that
        copies verifies them again on the way.
        """
        ...


async def copy_file_in(store: BlobStore, path: Path, digest: Digest, size: int) -> None:
    """:meth:`BlobStore.import_file` for a store that cannot take a file by rename: an
    upload of the file's bytes, verified at commit; the file is removed either way."""
    upload_id = "import" + uuid.uuid4().hex
    try:
        await store.start_upload(upload_id)
        try:
            written = await store.write_upload(upload_id, 0, _file_blocks(path), size)
            if written != size:
                raise EOFError(f"{path} holds {written} bytes, not {size}")
            await store.commit_upload(upload_id, digest, size)
        except BaseException:
            await store.abort_upload(upload_id)
            raise
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def once(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a one-chunk stream, for :meth:`BlobStore.write_upload`."""
    yield data


async def _file_blocks(path: Path, block: int = 8 << 20) -> AsyncIterator[bytes]:
    with await asyncio.to_thread(path.open, "rb") as f:
        while data := await asyncio.to_thread(f.read, block):
            yield data


class BodySink(Protocol):
    """What a :class:`DirectBody` hands its bytes to; every call is made in the body's
    reading thread, so a store opens, writes and closes its file without a trip of its
    own to a thread."""

    def begin(self) -> bool:
        """Before the first byte is read: whether the sink can take bytes now. If not,
        :meth:`DirectBody.drain_into` returns None having read nothing, and may be
        called again with the same sink once it can."""
        ...

    def __call__(self, piece: memoryview) -> None:
        """Take the next piece. Its buffer is reused on return: copy what is kept."""
        ...

    def end(self) -> None:
        """After the last piece, when the whole body was handed over."""
        ...


@runtime_checkable
class DirectBody(Protocol):
    """A request body a store writing local files may read straight off the connection,
    in a worker thread, instead of chunk by chunk on the event loop.

    It is still a plain stream of chunks for any other store. Reading it either way
    consumes it: a store does one or the other, once.
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def drain_into(self, sink: BodySink) -> int | None:
        """Read the whole body, handing each piece to ``sink`` in a worker thread; the
        number of bytes read, or None when ``sink.begin()`` said not yet.

        Raises what ``sink`` raises, or :class:`ConnectionError` when the client goes
        away mid-body. Never returns (nor raises, even when cancelled) while ``sink``
        may still be running.
        """
        ...


@runtime_checkable
class BlobEnumerator(Protocol):
    """A store that can list what it holds (fsck compares it with the metadata)."""

    def list_blobs(self) -> AsyncIterator[Digest]:
        """Every blob stored, in no particular order; uploads in progress excluded."""
        ...


@runtime_checkable
class StagingEnumerator(Protocol):
    """A store that can list its staging areas, so that garbage collection removes
    those no upload session owns (left by a crash, or by a write that lost a race)."""

    async def list_staging(self) -> list[tuple[str, float]]:
        """``(upload id, when last written as a Unix time)`` of every staging area."""
        ...

    async def remove_staging(self, upload_id: str) -> None:
        """Remove everything staged under ``upload_id``; missing is not an error."""
        ...
