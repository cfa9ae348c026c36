"""GC and retention on a schedule inside ``dockyard serve`` (``[gc] interval``).

Every worker (and every replica) runs the schedule: runs may overlap, which is safe,
because each deletion re-checks its condition in its own transaction and only the one
that deleted a blob's row deletes its bytes. Overlapping runs only cost some queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from dockyard.config import Settings
from dockyard.core import Registry
from dockyard.gc.collect import collect_garbage
from dockyard.gc.retention import apply_retention

log = logging.getLogger("dockyard.gc")


async def run_once(registry: Registry, settings: Settings) -> None:
    """Retention (when rules exist), then GC: what one scheduled run does."""
    if settings.retention:
        await apply_retention(registry, settings.retention)
    await collect_garbage(
        registry, grace=settings.gc.grace, upload_expiry=settings.gc.upload_expiry
    )


async def _loop(registry: Callable[[], Registry], settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.gc.interval)
        try:
            await run_once(registry(), settings)
        except Exception:
            # A failed run (database busy, storage hiccup) must not stop the schedule.
            log.exception("scheduled gc failed; next run in %gs", settings.gc.interval)


def schedule(app: web.Application, settings: Settings, registry: Callable[[], Registry]) -> None:
    """Run :func:`run_once` every ``[gc] interval`` while the app runs."""

    async def gc_ctx(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_loop(registry, settings), name="dockyard-gc")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(gc_ctx)
