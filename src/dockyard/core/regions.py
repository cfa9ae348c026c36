"""Ranges of open local files, which a response sends with ``sendfile``.

A blob still being fetched by a source is read from the file it is being written to:
the source hands out :class:`FileRegion` items for the bytes already there, so they go
to the client by ``sendfile`` without passing through Python.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True, slots=True)
class FileRegion:
    """``count`` bytes of ``file`` from ``offset``; the file stays open while in use."""

    file: BinaryIO
    offset: int
    count: int


async def open_for_reading(path: Path) -> BinaryIO:
    """Open ``path`` for reading off the loop; a file opened for a caller that was
    cancelled meanwhile is closed, not leaked."""
    opening: asyncio.Future[BinaryIO] = asyncio.ensure_future(asyncio.to_thread(path.open, "rb"))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
