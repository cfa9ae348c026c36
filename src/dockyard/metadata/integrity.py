"""Integrity queries for fsck: which blobs to re-hash, their verdicts, and who they break."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select

from dockyard.metadata import schema as s
from dockyard.metadata.store import MetadataStore, _now, _utc


@dataclass(frozen=True, slots=True)
class BlobUse:
    """A manifest that needs a blob (directly, or through an index child), and its tags."""

    repository: str
    manifest: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A blob fsck found corrupt: when, and why."""

    digest: str
    quarantined_at: datetime
    problem: str


class IntegrityStore:
    """fsck's reads and writes, on the metadata store's database."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def blobs_to_check(
        self, *, sample: int | None = None, checked_before: datetime | None = None
    ) -> list[tuple[str, int]]:
        """``(digest, size)`` of stored blobs: all, a random ``sample``, or those not
        verified since ``checked_before`` (never-verified ones included)."""
        b, c = s.blobs, s.blob_checks
        query = select(b.c.digest, b.c.size).outerjoin(c, c.c.digest == b.c.digest)
        if checked_before is not None:
            query = query.where(or_(c.c.checked_at.is_(None), c.c.checked_at < checked_before))
        query = query.order_by(func.random()) if sample is not None else query.order_by(b.c.digest)
        if sample is not None:
            query = query.limit(sample)
        async with self._meta._read() as conn:
            return [(r.digest, int(r.size)) for r in (await conn.execute(query)).all()]

    async def all_blobs(self) -> dict[str, int]:
        """``{digest: size}`` of every blob the metadata says is stored."""
        async with self._meta._read() as conn:
            rows = (await conn.execute(select(s.blobs.c.digest, s.blobs.c.size))).all()
        return {r.digest: int(r.size) for r in rows}

    async def record_check(self, digest: str, problem: str | None) -> None:
        """Record a verification of ``digest``: sound (``problem`` None) or quarantined."""
        c = s.blob_checks
        now = _now()
        values = {
            "checked_at": now,
            "quarantined_at": now if problem else None,
            "problem": problem[:255] if problem else None,
        }
        async with self._meta._write() as conn:
            if problem is None:
                # A sound blob stays quarantined only if fsck found it corrupt before and
                # nothing re-uploaded it since: that is for the operator to lift.
                previous = await conn.execute(
                    select(c.c.quarantined_at).where(c.c.digest == digest)
                )
                if previous.scalar_one_or_none() is not None:
                    values = {"checked_at": now}
            await conn.execute(
                self._meta._insert(c)
                .values(digest=digest, **values)
                .on_conflict_do_update(index_elements=["digest"], set_=values)
            )

    async def release(self, digest: str) -> bool:
        """Lift the quarantine of ``digest``; False when it was not quarantined."""
        c = s.blob_checks
        async with self._meta._write() as conn:
            result = await conn.execute(
                delete(c).where(c.c.digest == digest, c.c.quarantined_at.is_not(None))
            )
            return bool(result.rowcount)

    async def quarantined(self) -> list[Quarantined]:
        """Every quarantined blob."""
        c = s.blob_checks
        query = (
            select(c.c.digest, c.c.quarantined_at, c.c.problem)
            .where(c.c.quarantined_at.is_not(None))
            .order_by(c.c.digest)
        )
        async with self._meta._read() as conn:
            rows = (await conn.execute(query)).all()
        return [Quarantined(r.digest, _utc(r.quarantined_at), r.problem or "") for r in rows]

    async def users_of(self, digest: str) -> list[BlobUse]:
        """The manifests a blob breaks: those referencing it, and the indexes above them."""
        m, refs, r, t = s.manifests, s.manifest_refs, s.repositories, s.tags
        async with self._meta._read() as conn:
            direct = (
                await conn.execute(
                    select(m.c.id, m.c.repository_id, m.c.digest)
                    .join(refs, refs.c.manifest_id == m.c.id)
                    .where(refs.c.digest == digest, refs.c.kind == "blob")
                )
            ).all()
            found = {(row.repository_id, row.digest) for row in direct}
            frontier = set(found)
            while frontier:  # indexes whose children are broken are broken too
                parents = set()
                for repo_id, child in frontier:
                    rows = await conn.execute(
                        select(m.c.repository_id, m.c.digest)
                        .join(refs, refs.c.manifest_id == m.c.id)
                        .where(
                            m.c.repository_id == repo_id,
                            refs.c.digest == child,
                            refs.c.kind == "manifest",
                        )
                    )
                    parents |= {(p.repository_id, p.digest) for p in rows} - found
                found |= parents
                frontier = parents
            uses = []
            for repo_id, manifest in sorted(found):
                name = (await conn.execute(select(r.c.name).where(r.c.id == repo_id))).scalar_one()
                tags = (
                    await conn.execute(
                        select(t.c.name)
                        .where(t.c.repository_id == repo_id, t.c.manifest_digest == manifest)
                        .order_by(t.c.name)
                    )
                ).scalars()
                uses.append(BlobUse(name, manifest, tuple(tags)))
        return sorted(uses, key=lambda u: (u.repository, u.manifest))
