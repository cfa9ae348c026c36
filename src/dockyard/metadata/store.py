"""MetadataStore: typed queries over the schema, one transaction per operation.

Every method is a complete unit of work. Writes that must agree (a manifest and the
blobs it needs, a tag and its history) happen in one transaction, so two processes
pushing at once never leave a manifest without its blobs or a tag move unrecorded.
How the transactions run, on SQLite or PostgreSQL, is :mod:`dockyard.metadata.database`;
the statements of a push are :mod:`dockyard.metadata.queries`, the same on either.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata import queries as q
from dockyard.metadata import schema as s
from dockyard.metadata import tag_moves
from dockyard.metadata.database import Database
from dockyard.metadata.records import (
    ManifestRecord,
    NewManifest,
    ReferrerRecord,
    TagChange,
    UploadRecord,
)
from dockyard.metadata.sqlite_reads import SqliteReader

# The most rows a listing reads on the event loop (SQLite): a page, however large ``n``
# asks (core caps it at 10,000 and one more), or a whole list up to this long.
_LOOP_ROWS = 10_001


class MetadataError(Exception):
    """Base of the metadata errors; none of them knows about HTTP."""


class MissingReferences(MetadataError):
    """A manifest references blobs or manifests the repository does not have."""

    def __init__(self, blobs: list[str], manifests: list[str]) -> None:
        self.blobs = blobs
        self.manifests = manifests
        super().__init__(f"missing blobs {blobs}, manifests {manifests}")


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class MetadataStore(Database):
    """All metadata reads and writes Dockyard makes, as typed async methods."""

    # -- repositories ---------------------------------------------------------------

    async def _repository_id(self, conn: AsyncConnection, name: str) -> int | None:
        row = await conn.execute(select(s.repositories.c.id).where(s.repositories.c.name == name))
        return row.scalar_one_or_none()

    def _ensure_repository(self, conn: Connection, name: str) -> int:
        """The id of repository ``name``, created if need be."""
        repo_id: int | None = conn.execute(q.REPOSITORY_ID, {"name": name}).scalar()
        if repo_id is None:
            params = {"name": name, "created_at": _now()}
            repo_id = conn.execute(self._upserts.repository, params).scalar()
        if repo_id is None:  # created by a concurrent transaction since the first read
            repo_id = conn.execute(q.REPOSITORY_ID, {"name": name}).scalar_one()
        return repo_id

    async def repository_exists(self, name: str) -> bool:
        """Whether ``name`` has ever held a blob or a manifest."""
        async with self._read() as conn:
            return await self._repository_id(conn, name) is not None

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        """Repository names in lexical order, after ``last``, at most ``limit``."""
        if self._reader is not None:
            rows = self._list_on_loop(self._reader, q.REPOSITORY_PAGE, {"last": last or ""}, limit)
            if rows is not None:
                return rows
        query = select(s.repositories.c.name).order_by(s.repositories.c.name)
        if last:
            query = query.where(s.repositories.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            return list((await conn.execute(query)).scalars())

    @staticmethod
    def _list_on_loop(
        reader: SqliteReader, statement: Select[Any], params: dict[str, Any], limit: int | None
    ) -> list[str] | None:
        """Up to ``limit`` names (all when None) read on the loop; None when more than
        :data:`_LOOP_ROWS` would be: the engine's thread reads those instead."""
        if limit is not None:
            return reader.first_column(statement, params, limit) if limit <= _LOOP_ROWS else None
        rows = reader.first_column(statement, params, _LOOP_ROWS + 1)
        return rows if len(rows) <= _LOOP_ROWS else None

    # -- blobs ----------------------------------------------------------------------

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        """Record that ``digest`` (stored, ``size`` bytes) may be served by ``repository``."""

        def link(conn: Connection) -> None:
            now = _now()
            repo_id = self._ensure_repository(conn, repository)
            conn.execute(self._upserts.blob, {"digest": digest, "size": size, "created_at": now})
            params = {"repository_id": repo_id, "digest": digest, "created_at": now}
            conn.execute(self._upserts.link, params)

        await self._transact(link)

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """The size of ``digest`` if ``repository`` may serve it, else None."""
        params = {"repository": repository, "digest": digest}
        if self._reader is not None:
            row = self._reader.one(q.BLOB_SIZE, params)
            return None if row is None else int(row[0])
        if self._pg_reader is not None:
            row = await self._pg_reader.one(q.BLOB_SIZE, params)
            return None if row is None else int(row[0])
        async with self.engine.connect() as conn:
            return (await conn.execute(q.BLOB_SIZE, params)).scalar_one_or_none()

    async def repositories_with_blob(self, digest: str) -> list[str]:
        """Every repository that may serve ``digest`` (for mounts without ``from``)."""
        query = (
            select(s.repositories.c.name)
            .join(s.repository_blobs, s.repository_blobs.c.repository_id == s.repositories.c.id)
            .where(s.repository_blobs.c.digest == digest)
            .order_by(s.repositories.c.name)
        )
        async with self._read() as conn:
            return list((await conn.execute(query)).scalars())

    async def unlink_blob(self, repository: str, digest: str) -> bool:
        """Stop ``repository`` serving ``digest``; False when it could not."""
        rb = s.repository_blobs

        def unlink(conn: Connection) -> bool:
            repo_id = conn.execute(q.REPOSITORY_ID, {"name": repository}).scalar()
            if repo_id is None:
                return False
            result = conn.execute(
                rb.delete().where(rb.c.repository_id == repo_id, rb.c.digest == digest)
            )
            return bool(result.rowcount)

        return await self._transact(unlink)

    # -- manifests ------------------------------------------------------------------

    async def put_manifest(
        self,
        repository: str,
        manifest: NewManifest,
        tags: Iterable[str],
        *,
        reason: str = "push",
        check_references: bool = True,
    ) -> list[TagChange]:
        """Store ``manifest`` in ``repository`` and point ``tags`` at it, atomically.

        Raises :class:`MissingReferences` (and stores nothing) when a referenced blob
        or child manifest is not in the repository, unless ``check_references`` is off
        (the cache stores a manifest before the blobs it fetches on demand). Tag moves
        are recorded with ``reason``. Returns the tag moves it made.
        """
        # In one order: two PUTs moving the same tags lock their rows in the same order.
        tags = sorted(set(tags))

        def put(conn: Connection) -> list[TagChange]:
            repo_id = self._ensure_repository(conn, repository)
            if check_references:
                self._check_references(conn, repo_id, manifest)
            self._store_manifest(conn, repo_id, manifest)
            changes = []
            for tag in tags:
                change = tag_moves.set_tag(
                    conn, self._upserts, repo_id, repository, tag, manifest.digest, reason
                )
                if change:
                    changes.append(change)
            return changes

        return await self._transact(put)

    def _store_manifest(self, conn: Connection, repo_id: int, manifest: NewManifest) -> None:
        """Insert ``manifest`` and its references, or hold the copy already stored."""
        row = {
            "repository_id": repo_id,
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "size": len(manifest.content),
            "content": manifest.content,
            "artifact_type": manifest.artifact_type,
            "subject_digest": manifest.subject_digest,
            "annotations": manifest.annotations,
            "created_at": _now(),
        }
        while True:
            # ON CONFLICT: the same manifest pushed through two replicas at once is
            # stored once, and neither push fails on the unique key.
            manifest_id = conn.execute(self._upserts.manifest, row).scalar()
            if manifest_id is not None:
                break
            # Stored already: hold it FOR SHARE until this PUT's tags commit, so that
            # retention (which deletes untagged manifests, SKIP LOCKED) cannot delete it
            # under them. If retention holds it, this waits; a row retention deleted
            # meanwhile is not returned, and the manifest is stored again.
            held = conn.execute(
                q.HOLD_MANIFEST, {"repository_id": repo_id, "digest": row["digest"]}
            )
            if held.first() is not None:
                return
        refs = [
            {"manifest_id": manifest_id, "digest": d, "kind": "blob"}
            for d in set(manifest.blob_refs)
        ]
        refs += [
            {"manifest_id": manifest_id, "digest": d, "kind": "manifest"}
            for d in set(manifest.manifest_refs)
        ]
        if refs:
            conn.execute(q.INSERT_MANIFEST_REF, refs)

    def _check_references(self, conn: Connection, repo_id: int, manifest: NewManifest) -> None:
        missing_blobs: list[str] = []
        missing_manifests: list[str] = []
        if manifest.blob_refs:
            wanted = set(manifest.blob_refs)
            found = conn.execute(q.LINKED_BLOBS, {"repository_id": repo_id, "digests": wanted})
            missing_blobs = sorted(wanted - set(found.scalars()))
        if manifest.manifest_refs:
            wanted = set(manifest.manifest_refs)
            found = conn.execute(q.STORED_MANIFESTS, {"repository_id": repo_id, "digests": wanted})
            missing_manifests = sorted(wanted - set(found.scalars()))
        if missing_blobs or missing_manifests:
            raise MissingReferences(missing_blobs, missing_manifests)

    async def get_manifest(
        self, repository: str, reference: str, *, by_digest: bool
    ) -> ManifestRecord | None:
        """The manifest ``reference`` (a digest or a tag) names in ``repository``."""
        query = q.MANIFEST_BY_DIGEST if by_digest else q.MANIFEST_BY_TAG
        params = {"repository": repository, "reference": reference}
        if self._reader is not None:
            row = self._reader.one(query, params)
        elif self._pg_reader is not None:
            row = await self._pg_reader.one(query, params)
        else:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query, params)).one_or_none()
        if row is None:
            return None
        return ManifestRecord(digest=row[0], media_type=row[1], content=bytes(row[2]))

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest and every tag pointing at it (recorded); False if absent."""
        m, t_ = s.manifests, s.tags

        def delete_(conn: Connection) -> bool:
            repo_id = conn.execute(q.REPOSITORY_ID, {"name": repository}).scalar()
            if repo_id is None:
                return False
            # Lock the manifest first (PostgreSQL): a PUT holding it commits its tags
            # before the read below, a new statement that then sees and removes them.
            held = {"repository_id": repo_id, "digest": digest}
            if conn.execute(q.MANIFEST_FOR_UPDATE, held).first() is None:
                return False
            tagged = conn.execute(
                select(t_.c.name).where(
                    t_.c.repository_id == repo_id, t_.c.manifest_digest == digest
                )
            )
            for tag in list(tagged.scalars()):
                tag_moves.remove_tag(conn, repo_id, repository, tag, "manifest-delete")
            result = conn.execute(
                m.delete().where(m.c.repository_id == repo_id, m.c.digest == digest)
            )
            return bool(result.rowcount)

        return await self._transact(delete_)

    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        """Manifests in ``repository`` whose subject is ``subject``, oldest first."""
        m = s.manifests
        query = (
            select(m.c.digest, m.c.media_type, m.c.size, m.c.artifact_type, m.c.annotations)
            .join(s.repositories, s.repositories.c.id == m.c.repository_id)
            .where(s.repositories.c.name == repository, m.c.subject_digest == subject)
            .order_by(m.c.id)
        )
        if artifact_type is not None:
            query = query.where(m.c.artifact_type == artifact_type)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ReferrerRecord(r.digest, r.media_type, r.size, r.artifact_type, r.annotations)
            for r in rows
        ]

    # -- tags -----------------------------------------------------------------------

    async def delete_tag(self, repository: str, tag: str) -> TagChange | None:
        """Remove ``tag`` (recorded in its history); None when it did not exist."""

        def remove(conn: Connection) -> TagChange | None:
            repo_id = conn.execute(q.REPOSITORY_ID, {"name": repository}).scalar()
            if repo_id is None:
                return None
            return tag_moves.remove_tag(conn, repo_id, repository, tag, "delete")

        return await self._transact(remove)

    async def list_tags(
        self, repository: str, limit: int | None, last: str | None
    ) -> list[str] | None:
        """Tags of ``repository`` in lexical order after ``last``; None if no such repository."""
        if self._reader is not None:
            found = self._reader.one(q.REPOSITORY_ID, {"name": repository})
            if found is None:
                return None
            params = {"repository_id": found[0], "last": last or ""}
            rows = self._list_on_loop(self._reader, q.TAG_PAGE, params, limit)
            if rows is not None:
                return rows
        async with self._read() as conn:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return None
            query = (
                select(s.tags.c.name)
                .where(s.tags.c.repository_id == repo_id)
                .order_by(s.tags.c.name)
            )
            if last:
                query = query.where(s.tags.c.name > last)
            if limit is not None:
                query = query.limit(limit)
            return list((await conn.execute(query)).scalars())

    async def tag_history(self, repository: str, tag: str | None = None) -> list[TagChange]:
        """Every recorded move of ``tag`` (or of all tags) in ``repository``, oldest first."""
        h = s.tag_history
        query = (
            select(h.c.tag, h.c.old_digest, h.c.new_digest, h.c.changed_at, h.c.reason)
            .join(s.repositories, s.repositories.c.id == h.c.repository_id)
            .where(s.repositories.c.name == repository)
            .order_by(h.c.id)
        )
        if tag is not None:
            query = query.where(h.c.tag == tag)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TagChange(repository, r.tag, r.old_digest, r.new_digest, _utc(r.changed_at), r.reason)
            for r in rows
        ]

    # -- uploads --------------------------------------------------------------------

    async def create_upload(self, upload_id: str, repository: str) -> UploadRecord:
        """Record a new, empty upload session and return it."""
        now = _now()
        row = {"id": upload_id, "repository": repository, "size": 0}
        await self._transact(
            lambda conn: conn.execute(
                q.INSERT_UPLOAD, {**row, "created_at": now, "updated_at": now}
            )
        )
        return UploadRecord(upload_id, repository, 0, now)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        """The upload session ``upload_id``, or None."""
        params = {"upload_id": upload_id}
        if self._reader is not None:
            row = self._reader.one(q.UPLOAD, params)
        elif self._pg_reader is not None:
            row = await self._pg_reader.one(q.UPLOAD, params)
        else:
            async with self.engine.connect() as conn:
                row = (await conn.execute(q.UPLOAD, params)).one_or_none()
        if row is None:
            return None
        created = row[3]
        if not isinstance(created, datetime):  # the SQLite fast path gives the stored text
            created = datetime.fromisoformat(created)
        return UploadRecord(row[0], row[1], int(row[2]), _utc(created))

    async def advance_upload(self, upload_id: str, expected: int, new_size: int) -> bool:
        """Move the committed size from ``expected`` to ``new_size``; False if it had moved."""
        params = {"upload_id": upload_id, "expected": expected, "size": new_size}
        result = await self._transact(
            lambda conn: conn.execute(q.ADVANCE_UPLOAD, {**params, "updated_at": _now()})
        )
        return bool(result.rowcount)

    async def delete_upload(self, upload_id: str) -> bool:
        """Forget the upload session; False if it was already gone."""
        result = await self._transact(lambda conn: conn.execute(q.DELETE_UPLOAD, {"id": upload_id}))
        return bool(result.rowcount)

    async def count_uploads(self) -> int:
        """How many upload sessions are open."""
        async with self._read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(s.uploads))).scalar_one()
            )
