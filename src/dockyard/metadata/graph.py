"""The manifest graph of each repository, and deletions that re-check it (retention).

GC's mark and retention's planning read a snapshot of the graph; every deletion then
re-checks, in its own write transaction, that the snapshot still holds (the tag still
points where it did; the manifest is still untagged and no index still needs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, exists, select

from dockyard.metadata import schema as s
from dockyard.metadata import tag_moves
from dockyard.metadata.records import TagChange
from dockyard.metadata.store import MetadataStore, _utc


@dataclass(frozen=True, slots=True)
class GraphManifest:
    """A manifest as the mark sees it."""

    digest: str
    created_at: datetime
    subject: str | None
    children: tuple[str, ...]
    blobs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GraphTag:
    """A tag, where it points and when it last moved."""

    name: str
    digest: str
    updated_at: datetime


@dataclass(slots=True)
class RepositoryGraph:
    """One repository's manifests (by digest) and tags."""

    name: str
    manifests: dict[str, GraphManifest] = field(default_factory=dict)
    tags: list[GraphTag] = field(default_factory=list)


class GraphStore:
    """Reads of the manifest graph and the deletions retention makes."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def repositories(self) -> list[str]:
        """Every repository name, in order."""
        async with self._meta._read() as conn:
            return list(
                (
                    await conn.execute(
                        select(s.repositories.c.name).order_by(s.repositories.c.name)
                    )
                ).scalars()
            )

    async def graph(self, repository: str) -> RepositoryGraph | None:
        """A snapshot of ``repository``'s manifests and tags; None if there is none."""
        m, refs, t = s.manifests, s.manifest_refs, s.tags
        graph = RepositoryGraph(repository)
        async with self._meta._read() as conn:
            repo_id = await self._meta._repository_id(conn, repository)
            if repo_id is None:
                return None
            rows = (
                await conn.execute(
                    select(m.c.id, m.c.digest, m.c.created_at, m.c.subject_digest).where(
                        m.c.repository_id == repo_id
                    )
                )
            ).all()
            ref_rows = (
                await conn.execute(
                    select(refs.c.manifest_id, refs.c.digest, refs.c.kind)
                    .join(m, m.c.id == refs.c.manifest_id)
                    .where(m.c.repository_id == repo_id)
                )
            ).all()
            tag_rows = (
                await conn.execute(
                    select(t.c.name, t.c.manifest_digest, t.c.updated_at).where(
                        t.c.repository_id == repo_id
                    )
                )
            ).all()
        children: dict[int, list[str]] = {}
        blobs: dict[int, list[str]] = {}
        for ref in ref_rows:
            target = children if ref.kind == "manifest" else blobs
            target.setdefault(ref.manifest_id, []).append(ref.digest)
        for row in rows:
            graph.manifests[row.digest] = GraphManifest(
                row.digest,
                _utc(row.created_at),
                row.subject_digest,
                tuple(sorted(children.get(row.id, []))),
                tuple(sorted(blobs.get(row.id, []))),
            )
        graph.tags = [GraphTag(r.name, r.manifest_digest, _utc(r.updated_at)) for r in tag_rows]
        return graph

    async def delete_tag_if_at(
        self, repository: str, tag: str, digest: str, reason: str
    ) -> TagChange | None:
        """Delete ``tag`` if it still points at ``digest``, recording ``reason`` in its
        history; None when it moved or went meanwhile."""
        async with self._meta._write() as conn:
            repo_id = await self._meta._repository_id(conn, repository)
            if repo_id is None:
                return None
            current = (
                await conn.execute(
                    select(s.tags.c.manifest_digest).where(
                        s.tags.c.repository_id == repo_id, s.tags.c.name == tag
                    )
                )
            ).scalar_one_or_none()
            if current != digest:
                return None
            return await conn.run_sync(tag_moves.remove_tag, repo_id, repository, tag, reason)

    async def delete_untagged_manifest(
        self, repository: str, digest: str, protected: frozenset[str]
    ) -> bool:
        """Delete the manifest if no tag points at it and no manifest of the repository
        has it as a child (re-checked here); ``protected`` digests are never deleted."""
        if digest in protected:
            return False
        m, refs, t = s.manifests, s.manifest_refs, s.tags
        async with self._meta._write() as conn:
            repo_id = await self._meta._repository_id(conn, repository)
            if repo_id is None:
                return False
            # Lock the manifest first; the checks below are new statements, so on
            # PostgreSQL they see an index (or tag) committed by a PUT that held it.
            # SKIP LOCKED: a manifest an index PUT holds is in use; retention never
            # waits for a row (see lifecycle.py), it tries again on its next run.
            locked = await conn.execute(
                select(m.c.id)
                .where(m.c.repository_id == repo_id, m.c.digest == digest)
                .with_for_update(skip_locked=True)
            )
            if locked.first() is None:
                return False
            tagged = exists().where(t.c.repository_id == repo_id, t.c.manifest_digest == digest)
            parent = (
                exists()
                .where(refs.c.digest == digest, refs.c.kind == "manifest")
                .where(refs.c.manifest_id == m.c.id, m.c.repository_id == repo_id)
            )
            if (await conn.execute(select(tagged | parent))).scalar():
                return False
            result = await conn.execute(
                delete(m).where(m.c.repository_id == repo_id, m.c.digest == digest)
            )
            return bool(result.rowcount)
