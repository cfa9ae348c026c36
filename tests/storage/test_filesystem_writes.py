"""How the filesystem store writes an upload's bytes: in small pieces, in order, whole."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci import Digest
from dockyard.storage import FilesystemBlobStore


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def mixed_parts() -> list[bytes]:
    """Chunks as a network delivers them: tiny ones, ones bigger than a write, one
    bigger than a block, more tiny ones than one writev takes."""
    rng = random.Random(7)
    sizes = (
        [1] * 300 + [100 << 10, 5 << 20, 33 << 10, 7] + [rng.randrange(1, 5000) for _ in range(500)]
    )
    return [rng.randbytes(size) for size in sizes]


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path)


async def test_mixed_chunks_land_whole_and_in_order(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    parts = mixed_parts()
    data = b"".join(parts)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    assert await store.write_upload(upload_id, 0, chunks(parts)) == len(data)
    assert await asyncio.to_thread((tmp_path / "uploads" / upload_id).read_bytes) == data
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await store.stat(Digest.of(data)) == len(data)


async def test_short_writes_are_resumed(
    store: FilesystemBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_writev = os.writev

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        # At most 1,000 bytes, often ending inside a buffer.
        return real_writev(fd, [memoryview(b"".join(buffers))[:1000]])

    monkeypatch.setattr(os, "writev", short_writev)
    parts = mixed_parts()[:320]
    data = b"".join(parts)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks(parts))
    assert await asyncio.to_thread((tmp_path / "uploads" / upload_id).read_bytes) == data
    await store.commit_upload(upload_id, Digest.of(data), len(data))
