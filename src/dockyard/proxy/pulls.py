"""Least-recently-pulled eviction of cached blobs, per upstream, above ``max_size`` or
past ``max_idle`` since their last pull.

Every pull of a cached blob is noted in memory (no database write on the hot path) and
flushed to ``cache_pulls`` every :data:`FLUSH_INTERVAL` seconds. After each flush, an
upstream whose cached blobs add up to more than its ``max_size`` loses its least
recently pulled blobs until it fits, and one with a ``max_idle`` loses the blobs not
pulled for that long: they are unlinked from the upstream's repositories, and their
bytes are deleted once no repository links them. Age counts from the last pull only: a
layer pulled every day stays, however old it is (unlike distribution's proxy, whose
blind TTL deletes layers still in use). An evicted blob is fetched again on its next
pull.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from dockyard.core import Registry
from dockyard.metadata import CachePulls
from dockyard.oci import Digest

log = logging.getLogger("dockyard.proxy")

FLUSH_INTERVAL = 5.0
_BATCH = 100


class PullLog:
    """Pull times of cached blobs, and the eviction they drive."""

    def __init__(
        self,
        core: Registry,
        limits: dict[str, int | None],
        prefixes: dict[str, str],
        idle: dict[str, float] | None = None,
    ):
        self._core = core
        self._rows = CachePulls(core.meta)
        self._limits = limits
        self._idle = idle or {}
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
        for upstream, max_idle in self._idle.items():
            if max_idle > 0:
                await self.evict_idle(upstream, max_idle)

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

    async def evict_idle(self, upstream: str, max_idle: float) -> int:
        """Evict ``upstream``'s blobs not pulled for ``max_idle`` seconds; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=max_idle)
        gone = 0
        while batch := await self._rows.pulled_before(upstream, cutoff, _BATCH):
            for digest, _size in batch:
                await self._evict_one(upstream, digest, "not pulled for a while")
                gone += 1
        self.evicted += gone
        return gone

    async def _evict_one(
        self, upstream: str, digest: str, why: str = "least recently pulled"
    ) -> None:
        meta = self._core.meta
        prefix = self._prefixes[upstream]
        users = await meta.repositories_with_blob(digest)
        for repository in users:
            if repository.startswith(prefix):
                await meta.unlink_blob(repository, digest)
        await self._rows.forget(upstream, digest)
        if not await meta.repositories_with_blob(digest):
            await self._core.store.delete(Digest.parse(digest))
        log.info("cache %s: evicted %s (%s)", upstream, digest, why)

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
