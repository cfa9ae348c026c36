"""The pull-through cache's bookkeeping: when each cached blob was last pulled.

Rows of ``cache_pulls``, one per upstream and blob. The cache writes them in batches
(pulls are counted in memory and flushed every few seconds), and evicts the least
recently pulled blobs first when an upstream's cache exceeds its ``max_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from dockyard.metadata import schema as s
from dockyard.metadata.store import MetadataStore


class CachePulls:
    """Reads and writes of ``cache_pulls``, on the metadata store's database."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def record(self, upstream: str, pulls: Mapping[str, tuple[int, datetime]]) -> None:
        """Record the last pull ``(size, when)`` of each digest; later times win."""
        if not pulls:
            return
        c = s.cache_pulls
        rows = [
            {"upstream": upstream, "digest": d, "size": size, "last_pulled_at": when}
            for d, (size, when) in sorted(pulls.items())
        ]
        insert = self._meta._insert(c)
        statement = insert.on_conflict_do_update(
            index_elements=["upstream", "digest"],
            set_={"last_pulled_at": func.max(c.c.last_pulled_at, insert.excluded.last_pulled_at)}
            if self._meta._dialect == "sqlite"
            else {
                "last_pulled_at": func.greatest(c.c.last_pulled_at, insert.excluded.last_pulled_at)
            },
        )
        async with self._meta._write() as conn:
            await conn.execute(statement, rows)

    async def total_size(self, upstream: str) -> int:
        """Bytes of the blobs cached for ``upstream``."""
        c = s.cache_pulls
        async with self._meta._read() as conn:
            total = await conn.execute(
                select(func.coalesce(func.sum(c.c.size), 0)).where(c.c.upstream == upstream)
            )
            return int(total.scalar_one())

    async def least_recent(self, upstream: str, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` (digest, size) of ``upstream``, least recently pulled first."""
        c = s.cache_pulls
        query = (
            select(c.c.digest, c.c.size)
            .where(c.c.upstream == upstream)
            .order_by(c.c.last_pulled_at, c.c.digest)
            .limit(limit)
        )
        async with self._meta._read() as conn:
            return [(row.digest, int(row.size)) for row in await conn.execute(query)]

    async def pulled_before(
        self, upstream: str, cutoff: datetime, limit: int
    ) -> list[tuple[str, int]]:
        """Up to ``limit`` (digest, size) of ``upstream`` last pulled before ``cutoff``."""
        c = s.cache_pulls
        query = (
            select(c.c.digest, c.c.size)
            .where(c.c.upstream == upstream, c.c.last_pulled_at < cutoff)
            .order_by(c.c.last_pulled_at, c.c.digest)
            .limit(limit)
        )
        async with self._meta._read() as conn:
            return [(row.digest, int(row.size)) for row in await conn.execute(query)]

    async def forget(self, upstream: str, digest: str) -> None:
        """Drop the row of an evicted blob."""
        c = s.cache_pulls
        async with self._meta._write() as conn:
            await conn.execute(delete(c).where(c.c.upstream == upstream, c.c.digest == digest))

    async def last_pulled(self, upstream: str, digest: str) -> datetime | None:
        """When ``digest`` was last pulled through ``upstream``, as recorded."""
        c = s.cache_pulls
        async with self._meta._read() as conn:
            when: datetime | None = (
                await conn.execute(
                    select(c.c.last_pulled_at).where(c.c.upstream == upstream, c.c.digest == digest)
                )
            ).scalar_one_or_none()
        if when is None or when.tzinfo is not None:
            return when
        return when.replace(tzinfo=UTC)
