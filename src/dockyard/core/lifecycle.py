"""Lifecycle operations: the sweep, upload expiry, retention deletions, integrity, quotas.

These are the rules GC, retention and fsck go through (they live in the ``gc`` feature,
which decides *what* to delete; this module is *how*, safely while pushes go on). See
:mod:`dockyard.metadata.lifecycle` for how a sweep and a racing push agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from dockyard.metadata import MetadataStore, TagChange, UploadRecord
from dockyard.metadata.graph import GraphManifest, GraphStore, GraphTag, RepositoryGraph
from dockyard.metadata.integrity import BlobUse, IntegrityStore, Quarantined
from dockyard.metadata.lifecycle import (
    BlobLink,
    LifecycleStore,
    QuotaExceeded,
    StoredBlob,
    namespace_of,
)
from dockyard.oci import Digest, ErrorCode, RegistryError, new_hasher
from dockyard.storage import BlobEnumerator, BlobNotFound, BlobStore, StagingEnumerator

__all__ = [
    "BlobLink",
    "BlobUse",
    "GraphManifest",
    "GraphTag",
    "Lifecycle",
    "Quarantined",
    "RepositoryGraph",
    "StoredBlob",
    "quota_error",
]


def quota_error(e: QuotaExceeded) -> RegistryError:
    """DENIED, saying the namespace's usage and limit."""
    return RegistryError(
        ErrorCode.DENIED,
        f"quota exceeded for namespace {e.namespace!r}: {e.usage} bytes used + {e.added} "
        f"bytes pushed > limit of {e.limit} bytes",
        detail={"namespace": e.namespace, "usage": e.usage, "size": e.added, "limit": e.limit},
    )


class Lifecycle:
    """Deleting safely, verifying, and accounting, for one registry."""

    def __init__(self, store: BlobStore, meta: MetadataStore, quotas: dict[str, int]) -> None:
        self._store = store
        self._meta = meta
        self.links = LifecycleStore(meta)
        self._graph = GraphStore(meta)
        self._integrity = IntegrityStore(meta)
        self.quotas = quotas

    # -- quotas ---------------------------------------------------------------------

    async def check_quota(self, repository: str) -> None:
        """DENIED when ``repository``'s namespace is already at or over its quota."""
        namespace = namespace_of(repository)
        limit = self.quotas.get(namespace)
        if limit is None:
            return
        usage = await self.links.namespace_usage(namespace)
        if usage >= limit:
            raise quota_error(QuotaExceeded(namespace, usage, 0, limit))

    async def usage(self) -> dict[str, tuple[int, int]]:
        """``{namespace: (bytes, blobs)}``, each blob counted once per namespace."""
        return await self.links.usage()

    # -- garbage collection ---------------------------------------------------------

    async def repositories(self) -> list[str]:
        """Every repository."""
        return await self._graph.repositories()

    async def graph(self, repository: str) -> RepositoryGraph | None:
        """A snapshot of a repository's manifests and tags."""
        return await self._graph.graph(repository)

    async def stale_links(self, grace: float) -> list[BlobLink]:
        """Links older than ``grace`` seconds that no manifest of their repository uses."""
        return await self.links.stale_links(_cutoff(grace))

    async def drop_stale_links(self, grace: float) -> list[BlobLink]:
        """Drop those links (each re-checked under lock); the ones actually dropped."""
        return await self.links.drop_stale_links(_cutoff(grace))

    async def unused_blobs(self, grace: float) -> list[StoredBlob]:
        """Blobs older than ``grace`` seconds that no link and no manifest holds."""
        return await self.links.unused_blobs(_cutoff(grace))

    async def sweep_blobs(self, blobs: list[StoredBlob], grace: float) -> list[StoredBlob]:
        """Delete ``blobs`` still unused, metadata first and then bytes, in one
        transaction per batch; returns those deleted."""

        async def delete_bytes(digest: str) -> None:
            await self._store.delete(Digest.parse(digest))

        return await self.links.delete_blobs(blobs, _cutoff(grace), delete_bytes)

    async def stale_uploads(self, expiry: float) -> list[UploadRecord]:
        """Upload sessions idle for more than ``expiry`` seconds."""
        return await self.links.stale_uploads(_cutoff(expiry))

    async def expire_upload(self, upload: UploadRecord, expiry: float) -> bool:
        """Close an idle session and remove its staged bytes; False if it woke up."""
        if not await self.links.expire_upload(upload.id, _cutoff(expiry)):
            return False
        await self._store.abort_upload(upload.id)
        return True

    async def orphaned_staging(self, expiry: float) -> list[str]:
        """Upload ids with bytes staged, untouched for more than ``expiry`` seconds,
        that no session owns: a crash left them, or a write that lost a race with a
        cancel (none when the store cannot list what it stages)."""
        if not isinstance(self._store, StagingEnumerator):
            return []
        cutoff = _cutoff(expiry).timestamp()
        return [
            upload_id
            for upload_id, written in await self._store.list_staging()
            if written < cutoff and await self._meta.get_upload(upload_id) is None
        ]

    async def remove_staging(self, upload_id: str) -> None:
        """Remove what is staged under ``upload_id`` (an orphan: see above)."""
        if isinstance(self._store, StagingEnumerator):
            await self._store.remove_staging(upload_id)

    # -- retention ------------------------------------------------------------------

    async def delete_tag(
        self, repository: str, tag: str, digest: str, rule: str
    ) -> TagChange | None:
        """Delete ``tag`` if it still points at ``digest``; its history says ``rule``."""
        return await self._graph.delete_tag_if_at(repository, tag, digest, f"retention:{rule}")

    async def delete_untagged(
        self, repository: str, digest: str, protected: frozenset[str] = frozenset()
    ) -> bool:
        """Delete an untagged manifest no index needs (re-checked); False otherwise."""
        return await self._graph.delete_untagged_manifest(repository, digest, protected)

    # -- integrity ------------------------------------------------------------------

    async def blobs_to_check(
        self, *, sample: int | None = None, not_checked_for: float | None = None
    ) -> list[tuple[str, int]]:
        """Blobs to verify: all, a sample, or those not verified for some seconds."""
        before = None if not_checked_for is None else _cutoff(not_checked_for)
        return await self._integrity.blobs_to_check(sample=sample, checked_before=before)

    async def verify_blob(self, digest: str, size: int) -> str | None:
        """Re-hash the stored bytes; None when sound, else the problem (and the blob is
        quarantined: no repository serves it until good bytes are uploaded again)."""
        expected = Digest.parse(digest)
        hasher = new_hasher(expected.algorithm)
        length = 0
        try:
            async for block in self._store.read(expected):
                hasher.update(block)
                length += len(block)
        except BlobNotFound:
            problem: str | None = "missing from storage"
        else:
            actual = Digest(expected.algorithm, hasher.hexdigest())
            if actual != expected:
                problem = f"content hashes to {actual}"
            elif length != size:
                problem = f"stored size {length} differs from recorded size {size}"
            else:
                problem = None
        await self._integrity.record_check(digest, problem)
        return problem

    async def recorded_blobs(self) -> dict[str, int]:
        """``{digest: size}`` of every blob the metadata records."""
        return await self._integrity.all_blobs()

    async def stored_blobs(self) -> AsyncIterator[Digest]:
        """Every blob in storage, when the store can list them (else nothing)."""
        if not isinstance(self._store, BlobEnumerator):
            return
        async for digest in self._store.list_blobs():
            yield digest

    async def quarantine(self, digest: str, problem: str) -> None:
        """Quarantine ``digest`` for ``problem`` (found corrupt while it was served)."""
        await self._integrity.record_check(digest, problem)

    async def users_of(self, digest: str) -> list[BlobUse]:
        """The manifests (and their tags) a blob breaks when it is bad."""
        return await self._integrity.users_of(digest)

    async def quarantined(self) -> list[Quarantined]:
        """Every quarantined blob."""
        return await self._integrity.quarantined()

    async def release(self, digest: str) -> bool:
        """Lift a quarantine (after the operator restored the bytes)."""
        return await self._integrity.release(digest)


def _cutoff(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
