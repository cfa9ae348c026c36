"""Storage lifecycle queries: blob links that race with GC, the sweep, upload expiry, usage.

The sweep and the pushes that race with it agree through transactions, never through
timing alone:

- a manifest PUT checks its blob links and inserts its references in one transaction
  (:meth:`MetadataStore.put_manifest`, links read ``FOR SHARE``); the sweep drops a link
  only in a transaction that locks it and then re-checks, in a fresh statement, that no
  manifest of that repository references it. Whichever commits first wins: the PUT sees
  its links, or it fails with MANIFEST_BLOB_UNKNOWN.
- a blob row is deleted, and its bytes after it, inside one transaction that re-checks
  that nothing links or references the blob; an upload links its freshly published blob
  in a transaction that then checks the bytes are there. A mount links only a blob whose
  row still exists. Either the upload finds its bytes, or it fails and the client retries.

SQLite serialises these write transactions (``BEGIN IMMEDIATE``). On PostgreSQL the same
code takes row locks (``FOR UPDATE``/``FOR SHARE``) and a transaction-scoped advisory lock
per digest, since a digest being re-created has no row to lock yet. The sweep locks its
rows ``SKIP LOCKED``: a link a push holds is in use, so it is left for the next run, and
the sweep never waits in a cycle with a push.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, literal, or_, select, text, tuple_

from dockyard.metadata import queries as q
from dockyard.metadata import schema as s
from dockyard.metadata.records import UploadRecord
from dockyard.metadata.sqlite_writes import in_sqlite_writer, wait
from dockyard.metadata.store import MetadataError, MetadataStore, _now, _utc

_rb = s.repository_blobs
_m = s.manifests
_refs = s.manifest_refs
_LOCK_DIGEST = text("SELECT pg_advisory_xact_lock(hashtext(:digest))")
# Rows deleted per transaction: short write locks, so pushes keep flowing during a sweep.
SWEEP_BATCH = 200


def _counts_usage(repository: str, quotas: dict[str, int]) -> bool:
    """Whether linking into ``repository`` sums its namespace's usage (a quota applies):
    a query too long to run on the event loop."""
    return namespace_of(repository) in quotas


class QuotaExceeded(MetadataError):
    """Linking the blob would take its namespace over its quota."""

    def __init__(self, namespace: str, usage: int, added: int, limit: int) -> None:
        self.namespace = namespace
        self.usage = usage
        self.added = added
        self.limit = limit
        super().__init__(f"namespace {namespace}: {usage} + {added} bytes > {limit}")


class BlobVanished(MetadataError):
    """The blob's bytes were swept while it was being linked; nothing was linked."""


@dataclass(frozen=True, slots=True)
class BlobLink:
    """A repository's link to a blob."""

    repository: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob row: digest, size, when it was first stored."""

    digest: str
    size: int
    created_at: datetime


def namespace_of(repository: str) -> str:
    """The top-level namespace of a repository: ``team-a`` for ``team-a/app/web``."""
    return repository.split("/", 1)[0]


def _in_namespace(namespace: str) -> Any:
    name = s.repositories.c.name
    return or_(name == namespace, name.like(namespace.replace("_", r"\_") + "/%", escape="\\"))


def _referenced_here() -> Any:
    """A manifest of the link's own repository references the linked blob."""
    return exists().where(
        _refs.c.digest == _rb.c.digest,
        _refs.c.kind == "blob",
        _m.c.id == _refs.c.manifest_id,
        _m.c.repository_id == _rb.c.repository_id,
    )


def _blob_in_use() -> Any:
    """Some link or some manifest reference still holds the blob."""
    linked = exists().where(_rb.c.digest == s.blobs.c.digest)
    referenced = exists().where(_refs.c.digest == s.blobs.c.digest, _refs.c.kind == "blob")
    return or_(linked, referenced)


class LifecycleStore:
    """Lifecycle reads and writes, on the metadata store's database."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    def _lock_digest(self, conn: Connection, digest: str) -> None:
        if self._meta._dialect == "postgresql":
            conn.execute(_LOCK_DIGEST, {"digest": digest})

    def _usage(self, conn: Connection, namespace: str) -> int:
        linked = (
            select(_rb.c.digest)
            .join(s.repositories, s.repositories.c.id == _rb.c.repository_id)
            .where(_in_namespace(namespace))
            .distinct()
            .subquery()
        )
        total = conn.execute(
            select(func.coalesce(func.sum(s.blobs.c.size), 0)).where(
                s.blobs.c.digest.in_(select(linked.c.digest))
            )
        )
        return int(total.scalar_one())

    def _check_quota(
        self, conn: Connection, repository: str, digest: str, size: int, quotas: dict[str, int]
    ) -> None:
        namespace = namespace_of(repository)
        limit = quotas.get(namespace)
        if limit is None:
            return
        already = conn.execute(
            select(literal(1))
            .select_from(_rb.join(s.repositories, s.repositories.c.id == _rb.c.repository_id))
            .where(_rb.c.digest == digest, _in_namespace(namespace))
            .limit(1)
        )
        if already.first() is not None:
            return  # counted once per namespace: this blob is already paid for
        usage = self._usage(conn, namespace)
        if usage + size > limit:
            raise QuotaExceeded(namespace, usage, size, limit)

    def _insert_link(self, conn: Connection, repo_id: int, digest: str) -> None:
        params = {"repository_id": repo_id, "digest": digest, "created_at": _now()}
        conn.execute(self._meta._upserts.link, params)

    async def link_uploaded_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        present: Callable[[], Coroutine[Any, Any, bool]],
        quotas: dict[str, int],
        *,
        upload_id: str | None = None,
        local_file: Path | None = None,
    ) -> None:
        """Link a blob whose bytes an upload just published (verified: lifts a quarantine).

        ``present`` is asked, inside the transaction, whether the bytes are still stored;
        when they are not (a sweep deleted them after they were published) nothing is
        linked and :class:`BlobVanished` is raised. On :class:`QuotaExceeded` the blob is
        recorded but linked nowhere, so that the sweep removes its bytes. The session
        ``upload_id``, when given, is closed in the same transaction (unless the blob
        vanished). ``local_file``, when the bytes are that local file, lets a SQLite
        transaction look at it directly instead of asking ``present`` on the loop and
        waiting for the answer (which keeps the transaction off the loop).
        """

        def link(conn: Connection) -> QuotaExceeded | None:
            self._lock_digest(conn, digest)
            repo_id = self._meta._ensure_repository(conn, repository)
            blob = {"digest": digest, "size": size, "created_at": _now()}
            conn.execute(self._meta._upserts.blob, blob)
            refused: QuotaExceeded | None = None
            try:
                self._check_quota(conn, repository, digest, size, quotas)
            except QuotaExceeded as e:
                refused = e
            else:
                self._insert_link(conn, repo_id, digest)
                conn.execute(q.UNQUARANTINE, {"digest": digest})
            if upload_id is not None:
                conn.execute(q.DELETE_UPLOAD, {"id": upload_id})
            stored = local_file.exists() if local_file and in_sqlite_writer() else wait(present())
            if not stored:
                raise BlobVanished(digest)
            return refused

        on_loop = local_file is not None and not _counts_usage(repository, quotas)
        refused = await self._meta._transact(link, on_loop=on_loop)
        if refused is not None:
            raise refused

    async def link_existing_blob(
        self, repository: str, digest: str, quotas: dict[str, int]
    ) -> int | None:
        """Link a blob that is already stored (a mount); its size, or None when the blob
        is gone or quarantined (the caller falls back to an upload)."""

        def link(conn: Connection) -> int | None:
            self._lock_digest(conn, digest)
            size = conn.execute(
                select(s.blobs.c.size).where(
                    s.blobs.c.digest == digest,
                    ~exists().where(
                        s.blob_checks.c.digest == digest,
                        s.blob_checks.c.quarantined_at.is_not(None),
                    ),
                )
            ).scalar_one_or_none()
            if size is None:
                return None
            repo_id = self._meta._ensure_repository(conn, repository)
            self._check_quota(conn, repository, digest, size, quotas)
            self._insert_link(conn, repo_id, digest)
            return int(size)

        return await self._meta._transact(link, on_loop=not _counts_usage(repository, quotas))

    async def namespace_usage(self, namespace: str) -> int:
        """Bytes of the distinct blobs linked anywhere in ``namespace``."""
        async with self._meta._read() as conn:
            return await conn.run_sync(self._usage, namespace)

    async def usage(self) -> dict[str, tuple[int, int]]:
        """``{namespace: (bytes, blobs)}`` over every namespace holding a blob link."""
        pairs = (
            select(_rb.c.digest, s.repositories.c.name)
            .join(s.repositories, s.repositories.c.id == _rb.c.repository_id)
            .subquery()
        )
        async with self._meta._read() as conn:
            rows = (
                await conn.execute(
                    select(pairs.c.name, pairs.c.digest, s.blobs.c.size).join(
                        s.blobs, s.blobs.c.digest == pairs.c.digest
                    )
                )
            ).all()
        seen: dict[str, dict[str, int]] = {}
        for name, digest, size in rows:
            seen.setdefault(namespace_of(name), {})[digest] = int(size)
        return {ns: (sum(blobs.values()), len(blobs)) for ns, blobs in sorted(seen.items())}

    # -- the sweep ------------------------------------------------------------------

    async def stale_links(self, cutoff: datetime) -> list[BlobLink]:
        """Links older than ``cutoff`` that no manifest of their repository references."""
        query = (
            select(s.repositories.c.name, _rb.c.digest, s.blobs.c.size)
            .join(s.repositories, s.repositories.c.id == _rb.c.repository_id)
            .join(s.blobs, s.blobs.c.digest == _rb.c.digest)
            .where(_rb.c.created_at < cutoff, ~_referenced_here())
            .order_by(s.repositories.c.name, _rb.c.digest)
        )
        async with self._meta._read() as conn:
            rows = (await conn.execute(query)).all()
        return [BlobLink(r.name, r.digest, int(r.size)) for r in rows]

    async def drop_stale_links(self, cutoff: datetime) -> list[BlobLink]:
        """Delete the links :meth:`stale_links` finds, re-checked under lock, in batches."""
        dropped: list[BlobLink] = []
        candidates = await self.stale_links(cutoff)
        for start in range(0, len(candidates), SWEEP_BATCH):
            batch = candidates[start : start + SWEEP_BATCH]
            dropped += await self._drop_links(batch, cutoff)
        return dropped

    async def _drop_links(self, batch: Sequence[BlobLink], cutoff: datetime) -> list[BlobLink]:
        names = sorted({link.repository for link in batch})
        async with self._meta._write() as conn:
            ids = dict(
                (
                    await conn.execute(
                        select(s.repositories.c.name, s.repositories.c.id).where(
                            s.repositories.c.name.in_(names)
                        )
                    )
                ).all()
            )
            keys = [(ids[link.repository], link.digest) for link in batch if link.repository in ids]
            if not keys:
                return []
            pair = tuple_(_rb.c.repository_id, _rb.c.digest)
            # Lock first; the re-check below is a new statement, so on PostgreSQL it sees
            # every manifest committed by a PUT that held these links FOR SHARE. SKIP
            # LOCKED: a link a PUT (or another sweep) holds is in use and left for the
            # next run. The sweep never waits for a row, so it cannot close a deadlock
            # cycle with PUTs, which lock their links in no particular order.
            locked = await conn.execute(
                select(_rb.c.repository_id, _rb.c.digest)
                .where(pair.in_(keys))
                .with_for_update(skip_locked=True)
            )
            keys = [(r[0], r[1]) for r in locked.all()]
            if not keys:
                return []
            gone = await conn.execute(
                delete(_rb)
                .where(pair.in_(keys), _rb.c.created_at < cutoff, ~_referenced_here())
                .returning(_rb.c.repository_id, _rb.c.digest)
            )
            removed = {(r[0], r[1]) for r in gone.all()}
        return [link for link in batch if (ids.get(link.repository), link.digest) in removed]

    async def unused_blobs(self, cutoff: datetime) -> list[StoredBlob]:
        """Blobs stored before ``cutoff`` that no manifest references and no link made
        since ``cutoff`` protects (stale links count as gone: they go first)."""
        b = s.blobs
        referenced = exists().where(_refs.c.digest == b.c.digest, _refs.c.kind == "blob")
        young_link = exists().where(_rb.c.digest == b.c.digest, _rb.c.created_at >= cutoff)
        query = (
            select(b.c.digest, b.c.size, b.c.created_at)
            .where(b.c.created_at < cutoff, ~referenced, ~young_link)
            .order_by(b.c.digest)
        )
        async with self._meta._read() as conn:
            rows = (await conn.execute(query)).all()
        return [StoredBlob(r.digest, int(r.size), _utc(r.created_at)) for r in rows]

    async def delete_blobs(
        self,
        candidates: Sequence[StoredBlob],
        cutoff: datetime,
        delete_bytes: Callable[[str], Awaitable[None]],
    ) -> list[StoredBlob]:
        """Delete rows, then bytes, of the ``candidates`` still unused (re-checked in the
        same transaction). The bytes go before the commit, so an upload that links one
        of these digests afterwards finds them missing and fails instead of linking it."""
        deleted: list[StoredBlob] = []
        for start in range(0, len(candidates), SWEEP_BATCH):
            batch = {blob.digest: blob for blob in candidates[start : start + SWEEP_BATCH]}
            async with self._meta._write() as conn:
                for digest in sorted(batch):
                    await conn.run_sync(self._lock_digest, digest)
                gone = await conn.execute(
                    delete(s.blobs)
                    .where(
                        s.blobs.c.digest.in_(list(batch)),
                        s.blobs.c.created_at < cutoff,
                        ~_blob_in_use(),
                    )
                    .returning(s.blobs.c.digest)
                )
                digests = sorted(r[0] for r in gone.all())
                if digests:
                    await conn.execute(
                        delete(s.blob_checks).where(s.blob_checks.c.digest.in_(digests))
                    )
                for digest in digests:
                    await delete_bytes(digest)
            deleted += [batch[d] for d in digests]
        return deleted

    # -- uploads --------------------------------------------------------------------

    async def stale_uploads(self, cutoff: datetime) -> list[UploadRecord]:
        """Upload sessions that have not moved since before ``cutoff``."""
        u = s.uploads
        query = (
            select(u.c.id, u.c.repository, u.c.size, u.c.created_at)
            .where(u.c.updated_at < cutoff)
            .order_by(u.c.updated_at)
        )
        async with self._meta._read() as conn:
            rows = (await conn.execute(query)).all()
        return [UploadRecord(r.id, r.repository, int(r.size), _utc(r.created_at)) for r in rows]

    async def expire_upload(self, upload_id: str, cutoff: datetime) -> bool:
        """Forget the session if it is still stale; False when it moved or went meanwhile."""
        u = s.uploads
        async with self._meta._write() as conn:
            result = await conn.execute(
                delete(u).where(and_(u.c.id == upload_id, u.c.updated_at < cutoff))
            )
            return bool(result.rowcount)
