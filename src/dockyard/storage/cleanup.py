"""Closing what a request opened, even when the request is cancelled meanwhile.

``await asyncio.to_thread(os.close, fd)`` in a ``finally`` block is not enough: when the
awaiting task is cancelled before a worker thread has picked the job up (the pool busy,
a client that hung up), asyncio cancels the queued job and it never runs. The descriptor
leaks, and when it holds an upload's lock the upload stays locked for good: the next
write to it waits for ever. :func:`in_thread` hands the job over for good instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("dockyard.storage")


async def in_thread(close: Callable[..., object], *args: Any) -> None:
    """Run ``close(*args)`` in a worker thread, to its end whatever becomes of the caller:
    a cancellation of the caller is raised once the job is handed over, and the job
    runs all the same (a failure is then logged, there being nobody to raise it to)."""
    job = asyncio.get_running_loop().run_in_executor(None, close, *args)
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        job.add_done_callback(_log_failure)
        raise


def _log_failure(job: asyncio.Future[object]) -> None:
    if not job.cancelled() and (error := job.exception()) is not None:
        log.error("closing after a cancelled request failed", exc_info=error)
