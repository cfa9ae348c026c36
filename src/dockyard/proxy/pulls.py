"""Least-recently-pulled eviction of cached blobs, per upstream, above ``max_size``.

Every pull of a cached blob is noted in memory (no database write on the hot path) and
flushed to ``cache_pulls`` every :data:`FLUSH_INTERVAL` seconds. After each flush, an
upstream whose cached blobs add up to more than its ``max_size`` loses its least
recently pulled blobs until it fits: they are unlinked from the upstream's repositories,
and their bytes are deleted once no repository links them. Nothing is evicted by age
alone: a layer pulled every day stays, however old it is (unlike distribution's proxy,
whose blind TTL deletes layers still in use). An evicted blob is fetched again on its
next pull.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from dockyard.core import Registry
from dockyard.metadata import CachePulls
from dockyard.oci import Digest

log = logging.getLogger("dockyard.proxy")

FLUSH_INTERVAL = 5.0
_BATCH = 100


class PullLog:
    """Pull times of cached blobs, and the eviction they drive."""

    def __init__(self, core: Registry, limits: dict[str, int | None], prefixes: dict[str, str]):
        self._core = core
        self._rows = CachePulls(core.meta)
        self._limits = limits
        self._prefixes = prefixes
        self._pending: dict[str, dict[str, tuple[int, datetime]]] = {}
        self.evicted = 0

    def touch(self, upstream: str, digest: str, size: int) -> None:
        """Note a pull of ``digest`` through ``upstream`` now (in memory)."""
        self._pending.setdefault(upstream, {})[digest] = (size, datetime.now(UTC))

    async def flush(self) -> None:
        """Write the noted pulls, then evict where an upstream is over its size."""
        pending, self._pending = self._pending, {}
        for upstream, pulls in pending.items():
            await self._rows.record(upstream, pulls)
        for upstream, limit in self._limits.items():
            if limit is not None:
                await self.evict(upstream, limit)

    async def evict(self, upstream: str, limit: int) -> int:
        """Evict ``upstream``'s least recently pulled blobs until it holds at most
        ``limit`` bytes; return how many blobs went."""
        total = await self._rows.total_size(upstream)
        gone = 0
        while total > limit:
            batch = await self._rows.least_recent(upstream, _BATCH)
            if not batch:
                break
            for digest, size in batch:
                if total <= limit:
                    break
                await self._evict_one(upstream, digest)
                total -= size
                gone += 1
        self.evicted += gone
        return gone

    async def _evict_one(self, upstream: str, digest: str) -> None:
        meta = self._core.meta
        prefix = self._prefixes[upstream]
        users = await meta.repositories_with_blob(digest)
        for repository in users:
            if repository.startswith(prefix):
                await meta.unlink_blob(repository, digest)
        await self._rows.forget(upstream, digest)
        if not await meta.repositories_with_blob(digest):
            await self._core.store.delete(Digest.parse(digest))
        log.info("cache %s: evicted %s (least recently pulled)", upstream, digest)

    async def run(self) -> AsyncIterator[None]:
        """A cleanup context: flush every few seconds while the server runs, and once at
        shutdown."""
        task = asyncio.create_task(self._loop())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("cache: recording pulls or evicting failed")
