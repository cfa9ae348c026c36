"""Thread jobs that open or close descriptors, safe from a cancelled caller.

``await asyncio.to_thread(os.close, fd)`` in a ``finally`` block is not enough: when the
awaiting task is cancelled before a worker thread has picked the job up (the pool busy,
a client that hung up), asyncio cancels the queued job and it never runs. The descriptor
leaks, and when it holds an upload's lock the upload stays locked for good: the next
write to it waits for ever. A job that opens something has the opposite problem: its
caller, cancelled, never sees what it opened, so nothing closes it.

:func:`in_thread` hands a job to a worker thread for good: it runs to its end whatever
becomes of the caller, and what it opened for a caller that went away is handed to
``abandoned`` to close. :func:`open_for_reading` opens a file that way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")

log = logging.getLogger("dockyard.storage")


async def in_thread(
    func: Callable[..., T], *args: Any, abandoned: Callable[[T], object] | None = None
) -> T:
    """``func(*args)`` in a worker thread, run to its end even if the caller is cancelled
    meanwhile. The caller's cancellation is raised at once; the job's result then goes
    to ``abandoned`` (on the event loop: closing descriptors, nothing slow), and a
    failure of the job is logged, there being nobody left to raise it to."""
    job = asyncio.get_running_loop().run_in_executor(None, func, *args)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        job.add_done_callback(functools.partial(_abandon, abandoned))
        raise


def _abandon(abandoned: Callable[[Any], object] | None, job: asyncio.Future[Any]) -> None:
    if job.cancelled():  # the loop shut down before a thread took it
        return
    if (error := job.exception()) is not None:
        log.error("a job of a cancelled request failed", exc_info=error)
    elif abandoned is not None:
        abandoned(job.result())


async def open_for_reading(path: Path) -> BinaryIO:
    """Open ``path`` for reading off the loop; a file opened for a caller that was
    cancelled meanwhile is closed, not leaked."""
    return await in_thread(path.open, "rb", abandoned=_close)


def _close(file: BinaryIO) -> None:
    file.close()
