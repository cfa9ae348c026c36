"""MetadataStore: typed queries over the schema, one transaction per operation.

Every method is a complete unit of work. Writes that must agree (a manifest and the
blobs it needs, a tag and its history) happen in one transaction, so two processes
pushing at once never leave a manifest without its blobs or a tag move unrecorded.
On SQLite, write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers
queue on the database lock instead of failing half-way through an upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from dockyard.metadata import postgres
from dockyard.metadata import queries as q
from dockyard.metadata import schema as s
from dockyard.metadata.postgres_reads import PostgresReader
from dockyard.metadata.records import (
    ManifestRecord,
    NewManifest,
    ReferrerRecord,
    TagChange,
    UploadRecord,
)
from dockyard.metadata.sqlite_reads import SqliteReader


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


def database_url(url: str) -> str:
    """Map user-facing URLs to async drivers (``sqlite:///x`` -> ``sqlite+aiosqlite:///x``)."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def create_engine(
    url: str, pool_size: int = 10, *, statement_timeout: float = 30.0, pool_timeout: float = 30.0
) -> AsyncEngine:
    """An async engine for ``url`` with Dockyard's connection settings.

    ``statement_timeout`` and ``pool_timeout`` (seconds) apply to PostgreSQL.
    """
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url, **postgres.engine_options(pool_size, statement_timeout, pool_timeout)
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=30000",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("dockyard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class MetadataStore:
    """All metadata reads and writes Dockyard makes, as typed async methods."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        self._reader: SqliteReader | None = None
        self._pg_reader: PostgresReader | None = None

    async def open(self) -> None:
        """Prepare the fast read path (SQLite files, PostgreSQL); call once before serving."""
        database = self.engine.url.database
        if self._dialect == "sqlite" and database and database != ":memory:":
            self._reader = await asyncio.to_thread(SqliteReader, database)
        elif self._dialect == "postgresql":
            options = self.engine.get_execution_options()
            self._pg_reader = await PostgresReader.connect(
                self.engine.url,
                self.engine.pool.size(),  # type: ignore[attr-defined]
                options.get(postgres.SERVER_SETTINGS, {}),
            )

    async def close(self) -> None:
        """Close the fast read path and dispose of the connection pool."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._pg_reader is not None:
            await self._pg_reader.close()
            self._pg_reader = None
        await self.engine.dispose()

    async def ping(self) -> None:
        """Run a trivial query; raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(dockyard_write=True)
            async with conn.begin():
                yield conn

    def _insert(self, table: Any) -> sqlite.Insert | postgresql.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- repositories ---------------------------------------------------------------

    async def _repository_id(self, conn: AsyncConnection, name: str) -> int | None:
        row = await conn.execute(select(s.repositories.c.id).where(s.repositories.c.name == name))
        return row.scalar_one_or_none()

    async def _ensure_repository(self, conn: AsyncConnection, name: str) -> int:
        await conn.execute(
            self._insert(s.repositories)
            .values(name=name, created_at=_now())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        repo_id = await self._repository_id(conn, name)
        assert repo_id is not None
        return repo_id

    async def repository_exists(self, name: str) -> bool:
        """Whether ``name`` has ever held a blob or a manifest."""
        async with self._read() as conn:
            return await self._repository_id(conn, name) is not None

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        """Repository names in lexical order, after ``last``, at most ``limit``."""
        query = select(s.repositories.c.name).order_by(s.repositories.c.name)
        if last:
            query = query.where(s.repositories.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            return list((await conn.execute(query)).scalars())

    # -- blobs ----------------------------------------------------------------------

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        """Record that ``digest`` (stored, ``size`` bytes) may be served by ``repository``."""
        async with self._write() as conn:
            repo_id = await self._ensure_repository(conn, repository)
            await conn.execute(
                self._insert(s.blobs)
                .values(digest=digest, size=size, created_at=_now())
                .on_conflict_do_nothing(index_elements=["digest"])
            )
            await conn.execute(
                self._insert(s.repository_blobs)
                .values(repository_id=repo_id, digest=digest, created_at=_now())
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            )

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
        async with self._write() as conn:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return False
            result = await conn.execute(
                delete(s.repository_blobs).where(
                    s.repository_blobs.c.repository_id == repo_id,
                    s.repository_blobs.c.digest == digest,
                )
            )
            return bool(result.rowcount)

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
        async with self._write() as conn:
            repo_id = await self._ensure_repository(conn, repository)
            if check_references:
                await self._check_references(conn, repo_id, manifest)
            # ON CONFLICT: the same manifest pushed through two replicas at once is
            # stored once, and neither push fails on the unique key.
            result = await conn.execute(
                self._insert(s.manifests)
                .values(
                    repository_id=repo_id,
                    digest=manifest.digest,
                    media_type=manifest.media_type,
                    size=len(manifest.content),
                    content=manifest.content,
                    artifact_type=manifest.artifact_type,
                    subject_digest=manifest.subject_digest,
                    annotations=manifest.annotations,
                    created_at=_now(),
                )
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
                .returning(s.manifests.c.id)
            )
            manifest_id = result.scalar_one_or_none()
            if manifest_id is not None:
                refs = [
                    {"manifest_id": manifest_id, "digest": d, "kind": "blob"}
                    for d in set(manifest.blob_refs)
                ]
                refs += [
                    {"manifest_id": manifest_id, "digest": d, "kind": "manifest"}
                    for d in set(manifest.manifest_refs)
                ]
                if refs:
                    await conn.execute(s.manifest_refs.insert(), refs)
            changes = []
            for tag in tags:
                change = await self._set_tag(
                    conn, repo_id, repository, tag, manifest.digest, reason
                )
                if change:
                    changes.append(change)
            return changes

    async def _check_references(
        self, conn: AsyncConnection, repo_id: int, manifest: NewManifest
    ) -> None:
        missing_blobs: list[str] = []
        missing_manifests: list[str] = []
        if manifest.blob_refs:
            wanted = set(manifest.blob_refs)
            # FOR SHARE (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises anyway): GC's
            # sweep cannot drop these links until this manifest, and its refs, commit.
            found = await conn.execute(
                select(s.repository_blobs.c.digest)
                .where(
                    s.repository_blobs.c.repository_id == repo_id,
                    s.repository_blobs.c.digest.in_(wanted),
                    q.NOT_QUARANTINED,
                )
                .with_for_update(read=True, of=s.repository_blobs)
            )
            missing_blobs = sorted(wanted - set(found.scalars()))
        if manifest.manifest_refs:
            wanted = set(manifest.manifest_refs)
            # FOR SHARE: retention cannot delete these children until this index commits.
            found = await conn.execute(
                select(s.manifests.c.digest)
                .where(s.manifests.c.repository_id == repo_id, s.manifests.c.digest.in_(wanted))
                .with_for_update(read=True)
            )
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
        async with self._write() as conn:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return False
            tagged = await conn.execute(
                select(s.tags.c.name).where(
                    s.tags.c.repository_id == repo_id, s.tags.c.manifest_digest == digest
                )
            )
            for tag in list(tagged.scalars()):
                await self._remove_tag(conn, repo_id, repository, tag, "manifest-delete")
            result = await conn.execute(
                delete(s.manifests).where(
                    s.manifests.c.repository_id == repo_id, s.manifests.c.digest == digest
                )
            )
            return bool(result.rowcount)

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

    async def _set_tag(
        self,
        conn: AsyncConnection,
        repo_id: int,
        repository: str,
        tag: str,
        digest: str,
        reason: str,
    ) -> TagChange | None:
        now = _now()
        while True:
            # Locked (PostgreSQL; SQLite writers are serialised already): a concurrent
            # move waits for this one, then reads the digest it really replaces, so the
            # history stays a chain with no lost update.
            old = (
                await conn.execute(
                    select(s.tags.c.manifest_digest)
                    .where(s.tags.c.repository_id == repo_id, s.tags.c.name == tag)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if old == digest:
                return None
            if old is not None:
                await conn.execute(
                    update(s.tags)
                    .where(s.tags.c.repository_id == repo_id, s.tags.c.name == tag)
                    .values(manifest_digest=digest, updated_at=now)
                )
                break
            created = await conn.execute(
                self._insert(s.tags)
                .values(repository_id=repo_id, name=tag, manifest_digest=digest, updated_at=now)
                .on_conflict_do_nothing(index_elements=["repository_id", "name"])
                .returning(s.tags.c.name)
            )
            if created.first() is not None:
                break
            # Another transaction created the tag after our read: lock it and move it.
        return await self._record(conn, repo_id, repository, tag, old, digest, reason, now)

    async def _remove_tag(
        self, conn: AsyncConnection, repo_id: int, repository: str, tag: str, reason: str
    ) -> TagChange | None:
        old = (
            await conn.execute(
                delete(s.tags)
                .where(s.tags.c.repository_id == repo_id, s.tags.c.name == tag)
                .returning(s.tags.c.manifest_digest)
            )
        ).scalar_one_or_none()
        if old is None:
            return None
        return await self._record(conn, repo_id, repository, tag, old, None, reason, _now())

    async def _record(
        self,
        conn: AsyncConnection,
        repo_id: int,
        repository: str,
        tag: str,
        old: str | None,
        new: str | None,
        reason: str,
        when: datetime,
    ) -> TagChange:
        await conn.execute(
            s.tag_history.insert().values(
                repository_id=repo_id,
                tag=tag,
                old_digest=old,
                new_digest=new,
                changed_at=when,
                reason=reason,
            )
        )
        return TagChange(repository, tag, old, new, when, reason)

    async def delete_tag(self, repository: str, tag: str) -> TagChange | None:
        """Remove ``tag`` (recorded in its history); None when it did not exist."""
        async with self._write() as conn:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return None
            return await self._remove_tag(conn, repo_id, repository, tag, "delete")

    async def list_tags(
        self, repository: str, limit: int | None, last: str | None
    ) -> list[str] | None:
        """Tags of ``repository`` in lexical order after ``last``; None if no such repository."""
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
        async with self._write() as conn:
            await conn.execute(
                s.uploads.insert().values(
                    id=upload_id, repository=repository, size=0, created_at=now, updated_at=now
                )
            )
        return UploadRecord(upload_id, repository, 0, now)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        """The upload session ``upload_id``, or None."""
        u = s.uploads
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(u.c.id, u.c.repository, u.c.size, u.c.created_at).where(
                        u.c.id == upload_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return UploadRecord(row.id, row.repository, row.size, _utc(row.created_at))

    async def advance_upload(self, upload_id: str, expected: int, new_size: int) -> bool:
        """Move the committed size from ``expected`` to ``new_size``; False if it had moved."""
        async with self._write() as conn:
            result = await conn.execute(
                update(s.uploads)
                .where(s.uploads.c.id == upload_id, s.uploads.c.size == expected)
                .values(size=new_size, updated_at=_now())
            )
            return bool(result.rowcount)

    async def delete_upload(self, upload_id: str) -> bool:
        """Forget the upload session; False if it was already gone."""
        async with self._write() as conn:
            result = await conn.execute(delete(s.uploads).where(s.uploads.c.id == upload_id))
            return bool(result.rowcount)

    async def count_uploads(self) -> int:
        """How many upload sessions are open."""
        async with self._read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(s.uploads))).scalar_one()
            )
