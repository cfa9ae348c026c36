"""Verified streaming: a blob streamed from a non-local store is hashed on its way out.

``sendfile`` hands the kernel a file and never sees the bytes, so a local blob is
verified only by fsck. A blob streamed from an object store passes through Dockyard
anyway: a whole-blob read hashes it and holds back the last chunk until the digest
checks out. On a mismatch the blob is quarantined (as fsck would), the failure is
logged, and :class:`CorruptBlob` is raised instead of the last chunk: with the
``Content-Length`` already sent, the client sees a short, broken transfer and retries,
never a complete body that is wrong.

Range reads are not verified: a part cannot be checked against the digest of the whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from dockyard.oci import Digest, new_hasher

log = logging.getLogger("dockyard.integrity")

# Chunks at least this large are hashed in a thread (hashlib releases the GIL): a
# megabyte of SHA-256 would otherwise hold the loop for a few milliseconds.
_THREAD_HASH = 256 << 10

# ``(digest, problem)``: records the blob as quarantined.
Quarantine = Callable[[str, str], Awaitable[None]]


class CorruptBlob(Exception):
    """A streamed blob did not hash to its digest (or had the wrong size); it is
    quarantined now. Raised in place of its last chunk."""

    def __init__(self, digest: Digest, problem: str) -> None:
        self.digest = digest
        self.problem = problem
        super().__init__(f"blob {digest}: {problem}")


async def verified(
    chunks: AsyncIterator[bytes], digest: Digest, size: int, quarantine: Quarantine
) -> AsyncIterator[bytes]:
    """Yield ``chunks`` (the whole blob ``digest``, ``size`` bytes), one chunk behind,
    releasing the last only when everything hashed to ``digest``; otherwise quarantine
    the blob and raise :class:`CorruptBlob`."""
    hasher = new_hasher(digest.algorithm)
    length = 0
    held: bytes | None = None
    async for chunk in chunks:
        if not chunk:
            continue
        if len(chunk) >= _THREAD_HASH:
            await asyncio.to_thread(hasher.update, chunk)
        else:
            hasher.update(chunk)
        length += len(chunk)
        if held is not None:
            yield held
        held = chunk
    actual = Digest(digest.algorithm, hasher.hexdigest())
    if actual != digest:
        problem = f"content hashes to {actual}"
    elif length != size:
        problem = f"stored size {length} differs from recorded size {size}"
    else:
        if held is not None:
            yield held
        return
    log.error("blob %s is corrupt (%s): quarantined, transfer aborted", digest, problem)
    try:
        await quarantine(str(digest), problem)
    except Exception:
        # The transfer must break all the same; fsck will find the blob again.
        log.exception("could not quarantine corrupt blob %s", digest)
    raise CorruptBlob(digest, problem)
