"""Blob upload sessions: start, append chunks, finish with a digest, cancel.

The session's committed size lives in metadata, so any process may take the next
chunk; the bytes live in the blob store's staging area. A chunk is accepted only at
the committed size (spec.md: chunks MUST be uploaded in order, else 416), and a chunk
cut off half-way is discarded by the next write, never half-counted.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import weakref
from collections.abc import AsyncIterable
from dataclasses import dataclass

from dockyard.core import validation
from dockyard.core.blobs import BlobInfo, still_stored
from dockyard.core.lifecycle import Lifecycle, quota_error
from dockyard.core.sources import Source, check_writable
from dockyard.metadata import MetadataStore, UploadRecord
from dockyard.metadata.lifecycle import BlobVanished, QuotaExceeded
from dockyard.oci import Digest, ErrorCode, RegistryError
from dockyard.storage import (
    BlobStore,
    DigestMismatch,
    SizeLimitExceeded,
    UploadNotFound,
)

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """An inclusive byte range from a ``Content-Range`` header."""

    start: int
    end: int

    @classmethod
    def parse(cls, header: str, headers: dict[str, str] | None = None) -> ChunkRange:
        """Parse ``<start>-<end>``; BLOB_UPLOAD_INVALID when malformed or inverted.

        The status is 416 with ``headers`` (the upload's current ``Range``): a chunk whose
        range cannot be used is one the registry cannot accept, and the spec's endpoint
        table gives a PATCH only 404 and 416 as failures (end-5).
        """
        m = _CONTENT_RANGE.fullmatch(header.strip())
        if not m:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                f"malformed Content-Range {header[:100]!r}: expected <start>-<end>",
                status=416,
                headers=headers,
            )
        start, end = int(m.group(1)), int(m.group(2))
        if end < start:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                f"Content-Range {header[:100]!r} ends before it starts",
                status=416,
                headers=headers,
            )
        return cls(start, end)

    @property
    def length(self) -> int:
        return self.end - self.start + 1


# A closing chunk up to this size (as announced) is read whole and written with the
# commit, in one store step instead of a write and then a commit.
SMALL_CHUNK = 1 << 20


async def _read_exactly(chunks: AsyncIterable[bytes], expected: int) -> bytes:
    """The whole of a chunk announced as ``expected`` bytes; SIZE_INVALID otherwise."""
    parts = []
    received = 0
    async for part in chunks:
        received += len(part)
        if received > expected:
            raise RegistryError(
                ErrorCode.SIZE_INVALID, f"the body is longer than the {expected} bytes announced"
            )
        parts.append(part)
    if received != expected:
        raise RegistryError(
            ErrorCode.SIZE_INVALID, f"received {received} bytes, {expected} were announced"
        )
    return b"".join(parts)


def range_header(size: int) -> str:
    """The ``Range`` header value for an upload holding ``size`` bytes (``0-<last>``)."""
    return f"0-{max(size - 1, 0)}"


class Uploads:
    """Upload sessions for one registry."""

    def __init__(self, store: BlobStore, meta: MetadataStore, lifecycle: Lifecycle) -> None:
        self._store = store
        self._meta = meta
        self._lifecycle = lifecycle
        # One writer per upload in this process; other processes are fenced by the
        # compare-and-set on the committed size.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.source: Source | None = None

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[upload_id] = lock
        return lock

    async def start(self, repository: str) -> UploadRecord:
        """Open a new, empty session in ``repository``."""
        name = validation.repository_name(repository)
        check_writable(self.source, name, "push")
        await self._lifecycle.check_quota(name)  # refuse early; finish checks exactly
        upload_id = uuid.uuid4().hex
        await self._store.start_upload(upload_id)
        return await self._meta.create_upload(upload_id, name)

    async def status(self, repository: str, upload_id: str) -> UploadRecord:
        """The session ``upload_id`` of ``repository``; BLOB_UPLOAD_UNKNOWN if none."""
        name = validation.repository_name(repository)
        record = await self._meta.get_upload(upload_id) if upload_id.isalnum() else None
        if record is None or record.repository != name:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id[:100]})
        return record

    async def append(
        self,
        repository: str,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        content_range: str | None,
        content_length: int | None,
    ) -> UploadRecord:
        """Append one chunk. With ``Content-Range`` it must start at the committed size
        (else 416 with the current ``Range``) and match ``Content-Length``."""
        async with self._lock(upload_id):
            record = await self.status(repository, upload_id)
            new_size = await self._receive(record, chunks, content_range, content_length)
            if not await self._meta.advance_upload(upload_id, record.size, new_size):
                current = await self._meta.get_upload(upload_id)
                if current is None:
                    # Closed by another request meanwhile; a first chunk may have just
                    # staged the upload's file again: drop it.
                    await self._store.abort_upload(upload_id)
                    raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id})
                raise RegistryError(
                    ErrorCode.BLOB_UPLOAD_INVALID,
                    "the upload was changed concurrently; GET its status and resume",
                    status=416,
                    headers=self.headers(current),
                )
        return UploadRecord(record.id, record.repository, new_size, record.created_at)

    async def _receive(
        self,
        record: UploadRecord,
        chunks: AsyncIterable[bytes],
        content_range: str | None,
        content_length: int | None,
    ) -> int:
        """Check the chunk's range against ``record`` and stage it; the new size."""
        expected = self._expected(record, content_range, content_length)
        return await self._write(record, chunks, expected)

    def _expected(
        self, record: UploadRecord, content_range: str | None, content_length: int | None
    ) -> int | None:
        """The chunk's announced length, checked against ``record`` and each other."""
        expected = content_length
        if content_range is not None:
            chunk = ChunkRange.parse(content_range, self.headers(record))
            if chunk.start != record.size:
                raise RegistryError(
                    ErrorCode.BLOB_UPLOAD_INVALID,
                    f"chunk starts at {chunk.start}, but the upload holds {record.size} "
                    "bytes: chunks must be sent in order",
                    status=416,
                    headers=self.headers(record),
                )
            if content_length is not None and content_length != chunk.length:
                raise RegistryError(
                    ErrorCode.SIZE_INVALID,
                    f"Content-Range covers {chunk.length} bytes, "
                    f"but Content-Length is {content_length}",
                )
            expected = chunk.length
        return expected

    async def _write(
        self, record: UploadRecord, chunks: AsyncIterable[bytes], expected: int | None
    ) -> int:
        try:
            new_size = await self._store.write_upload(record.id, record.size, chunks, expected)
        except UploadNotFound:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": record.id}) from None
        except SizeLimitExceeded:
            raise RegistryError(
                ErrorCode.SIZE_INVALID, f"the body is longer than the {expected} bytes announced"
            ) from None
        if expected is not None and new_size - record.size != expected:
            raise RegistryError(
                ErrorCode.SIZE_INVALID,
                f"received {new_size - record.size} bytes, {expected} were announced",
            )
        return new_size

    async def finish(
        self,
        repository: str,
        upload_id: str,
        raw_digest: str | None,
        chunks: AsyncIterable[bytes] | None,
        content_range: str | None,
        content_length: int | None,
    ) -> BlobInfo:
        """Close the session with its digest, after an optional last chunk.

        The blob is published only when the bytes hash to the digest; otherwise
        DIGEST_INVALID, the session is closed and nothing is stored.
        """
        if not raw_digest:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID, "the closing PUT needs ?digest=<digest> of the whole blob"
            )
        digest = validation.digest(raw_digest)
        async with self._lock(upload_id):
            record = await self.status(repository, upload_id)
            size, last = record.size, b""
            if chunks is not None:
                # The session ends here either way, so its size is not written back.
                expected = self._expected(record, content_range, content_length)
                if expected is not None and expected <= SMALL_CHUNK:
                    # Held in memory and handed over with the commit: one store step.
                    last = await _read_exactly(chunks, expected)
                    size += len(last)
                else:
                    size = await self._write(record, chunks, expected)
            try:
                await self._store.commit_upload(upload_id, digest, size, last)
            except DigestMismatch as e:
                await self._meta.delete_upload(upload_id)
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    f"uploaded content hashes to {e.actual}, not {e.expected}",
                    detail={"digest": str(digest)},
                ) from None
            except UploadNotFound:
                await self._meta.delete_upload(upload_id)
                raise RegistryError(
                    ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id}
                ) from None
            await self._link(record.repository, upload_id, digest, size)
        return BlobInfo(digest, size, self._store.local_path(digest))

    async def _link(self, repository: str, upload_id: str, digest: Digest, size: int) -> None:
        """Link the published blob and close the session, in one transaction."""
        try:
            await self._lifecycle.links.link_uploaded_blob(
                repository,
                str(digest),
                size,
                still_stored(self._store, digest),
                self._lifecycle.quotas,
                upload_id=upload_id,
                local_file=self._store.local_path(digest),
            )
        except QuotaExceeded as e:
            raise quota_error(e) from None
        except BlobVanished:
            await self._meta.delete_upload(upload_id)
            # A sweep deleted the (identical, unused) blob just as this upload published
            # it; nothing was linked. The client uploads again.
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "the blob was garbage-collected while this upload finished; upload it again",
                detail={"digest": str(digest)},
            ) from None

    async def upload(
        self,
        repository: str,
        raw_digest: str,
        chunks: AsyncIterable[bytes],
        content_length: int | None,
    ) -> BlobInfo:
        """A whole blob in one request (``POST ...?digest=``)."""
        digest = validation.digest(raw_digest)
        record = await self.start(repository)
        try:
            return await self.finish(
                repository, record.id, str(digest), chunks, None, content_length
            )
        except BaseException:
            await self.cancel(repository, record.id, missing_ok=True)
            raise

    async def cancel(self, repository: str, upload_id: str, *, missing_ok: bool = False) -> None:
        """Close the session and drop its bytes."""
        try:
            await self.status(repository, upload_id)
        except RegistryError:
            if missing_ok:
                return
            raise
        await self._store.abort_upload(upload_id)
        await self._meta.delete_upload(upload_id)

    @staticmethod
    def headers(record: UploadRecord) -> dict[str, str]:
        """The headers every upload response carries: Location, Range, Docker-Upload-UUID."""
        return {
            "Location": f"/v2/{record.repository}/blobs/uploads/{record.id}",
            "Range": range_header(record.size),
            "Docker-Upload-UUID": record.id,
        }
