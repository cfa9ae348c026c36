"""Ranges of open local files, which a response sends with ``sendfile``.

A blob still being fetched by a source is read from the file it is being written to:
the source hands out :class:`FileRegion` items for the bytes already there, so they go
to the client by ``sendfile`` without passing through Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from dockyard.storage.cleanup import open_for_reading

__all__ = ["FileRegion", "open_for_reading"]


@dataclass(frozen=True, slots=True)
class FileRegion:
    """``count`` bytes of ``file`` from ``offset``; the file stays open while in use."""

    file: BinaryIO
    offset: int
    count: int
