"""How the filesystem store writes an upload's bytes: in small pieces, in order, whole."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci import Digest
from dockyard.storage import (
    BodySink,
    FilesystemBlobStore,
    SizeLimitExceeded,
    UploadNotFound,
    hashwrite,
)


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


@pytest.mark.parametrize("fsync", [True, False])
async def test_writeback_starts_per_block_only_when_blobs_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    real = hashwrite._SYNC_FILE_RANGE
    assert real is not None, "sync_file_range(2) is there on Linux"
    calls: list[tuple[int, int, int, int]] = []

    def recording(fd: int, offset: int, count: int, flags: int) -> int:
        calls.append((fd, offset, count, flags))
        return real(fd, offset, count, flags)

    monkeypatch.setattr(hashwrite, "_SYNC_FILE_RANGE", recording)
    store = await asyncio.to_thread(FilesystemBlobStore, tmp_path, fsync=fsync)
    data = random.Random(3).randbytes(9 << 20)
    parts = [data[i : i + (256 << 10)] for i in range(0, len(data), 256 << 10)]
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks(parts))
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await asyncio.to_thread(store.local_path(Digest.of(data)).read_bytes) == data  # type: ignore[union-attr]
    if fsync:
        # Once per block written, each asking for the whole file, without waiting.
        assert len(calls) >= 2
        assert {call[1:] for call in calls} == {(0, 0, 2)}
    else:
        assert calls == []


async def test_uploads_work_where_sync_file_range_is_missing(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashwrite, "_SYNC_FILE_RANGE", None)
    data = random.Random(4).randbytes(5 << 20)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks([data[: 3 << 20], data[3 << 20 :]]))
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await store.stat(Digest.of(data)) == len(data)


async def test_commit_with_the_last_chunk_waits_for_another_process_holding_the_lock(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    head, tail = b"written before, ", b"and the last chunk"
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks([head]))
    # Another process's write holds the upload's lock (flock is per open file).
    lock_fd = await asyncio.to_thread(
        os.open, tmp_path / "uploads" / f"{upload_id}.lock", os.O_RDWR
    )
    await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
    digest = Digest.of(head + tail)
    commit = asyncio.ensure_future(store.commit_upload(upload_id, digest, 34, tail))
    await asyncio.sleep(0.2)
    assert not commit.done(), "the commit waits for the lock"
    await asyncio.to_thread(os.close, lock_fd)
    await asyncio.wait_for(commit, 10)
    assert await asyncio.to_thread(store.local_path(digest).read_bytes) == head + tail  # type: ignore[union-attr]


class _Drained:
    """A :class:`~dockyard.storage.DirectBody` as a test sees it: the sink begun, handed
    pieces and ended from a worker thread, in one reused buffer; iterating it is a
    failure."""

    def __init__(self, data: bytes, piece: int = 1 << 20) -> None:
        self.data = data
        self.piece = piece
        self.handed = 0
        self.drains = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("a store writing local files should drain the body")

    async def drain_into(self, sink: BodySink) -> int | None:
        def pump() -> int | None:
            if not sink.begin():
                return None
            buffer = bytearray(self.piece)
            for start in range(0, len(self.data), self.piece):
                part = self.data[start : start + self.piece]
                buffer[: len(part)] = part
                sink(memoryview(buffer)[: len(part)])
                self.handed += len(part)
                buffer[:] = bytes(len(buffer))  # reused: the sink kept no reference
            sink.end()
            return len(self.data)

        self.drains += 1
        return await asyncio.to_thread(pump)


async def test_a_direct_body_is_drained_and_the_hash_carries_on(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    data = random.Random(5).randbytes((6 << 20) + 5)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    # Partly streamed, partly drained, partly streamed again: one running hash.
    first, second = 1 << 20, (5 << 20) + 3
    assert await store.write_upload(upload_id, 0, chunks([data[:first]])) == first
    assert await store.write_upload(upload_id, first, _Drained(data[first:second])) == second
    assert await store.write_upload(upload_id, second, chunks([data[second:]])) == len(data)
    assert await asyncio.to_thread((tmp_path / "uploads" / upload_id).read_bytes) == data
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await store.stat(Digest.of(data)) == len(data)


async def test_a_direct_body_over_the_limit_is_refused(store: FilesystemBlobStore) -> None:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    with pytest.raises(SizeLimitExceeded):
        await store.write_upload(upload_id, 0, _Drained(bytes(3 << 20)), limit=(2 << 20) + 1)
    # What was staged is not trusted: the next write starts again from the offset given.
    data = b"fresh"
    assert await store.write_upload(upload_id, 0, chunks([data])) == len(data)
    await store.commit_upload(upload_id, Digest.of(data), len(data))


async def test_a_direct_body_waits_for_another_process_holding_the_lock(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    """Nothing is read off the connection until the lock is free, and the wait is the
    event loop's, not a thread's."""
    head, tail = b"h" * 100, random.Random(7).randbytes(3 << 20)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    assert await store.write_upload(upload_id, 0, chunks([head])) == len(head)
    lock_fd = await asyncio.to_thread(
        os.open, tmp_path / "uploads" / f"{upload_id}.lock", os.O_RDWR
    )
    await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
    body = _Drained(tail)
    write = asyncio.ensure_future(store.write_upload(upload_id, len(head), body))
    await asyncio.sleep(0.2)
    assert not write.done(), "the write waits for the lock"
    assert (body.drains, body.handed) == (1, 0)
    await asyncio.to_thread(os.close, lock_fd)
    assert await asyncio.wait_for(write, 10) == len(head) + len(tail)
    assert (body.drains, body.handed) == (2, len(tail))
    await store.commit_upload(upload_id, Digest.of(head + tail), len(head) + len(tail))
    assert await store.stat(Digest.of(head + tail)) == len(head) + len(tail)


async def test_a_direct_body_to_a_vanished_upload_reads_nothing(
    store: FilesystemBlobStore,
) -> None:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    assert await store.write_upload(upload_id, 0, chunks([b"abc"])) == 3
    await store.abort_upload(upload_id)
    body = _Drained(bytes(2 << 20))
    with pytest.raises(UploadNotFound):
        await store.write_upload(upload_id, 3, body)
    assert body.handed == 0


@pytest.mark.parametrize("fsync", [True, False])
def test_a_file_sink_hashes_writes_and_starts_writeback_every_few_mib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    calls: list[int] = []

    def recording(fd: int, *_: int) -> int:
        calls.append(fd)
        return 0

    monkeypatch.setattr(hashwrite, "_SYNC_FILE_RANGE", recording)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:1000]))  # short
    monkeypatch.setattr(hashwrite, "_WRITEBACK_EVERY", 4 << 20)
    data = random.Random(6).randbytes(8 << 20)
    hasher = hashlib.sha256()
    path = tmp_path / "sink"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        sink = hashwrite.FileSink(fd, hasher, limit=None, writeback=fsync)
        flushed_before = []
        for start in range(0, len(data), 1 << 20):
            sink(memoryview(data)[start : start + (1 << 20)])
            flushed_before.append(len(calls))
        assert sink.unflushed is fsync  # the last 4 MiB: the caller's to flush
    finally:
        os.close(fd)
    assert sink.written == len(data)
    assert path.read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    # Started before the fifth MiB, not after the eighth (the end of the body).
    assert calls == ([fd] if fsync else [])
    assert flushed_before == ([0, 0, 0, 0, 1, 1, 1, 1] if fsync else [0] * 8)


async def test_a_drained_bodys_last_bytes_are_flushed_after_the_drain(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writeback of a body's tail starts in a thread of its own once the drain has
    returned (the answer is not kept waiting for it), and its file is then closed."""
    calls: list[int] = []
    started = threading.Event()

    def recording(fd: int, *_: int) -> int:
        calls.append(fd)
        os.fstat(fd)  # still open
        started.set()
        return 0

    monkeypatch.setattr(hashwrite, "_SYNC_FILE_RANGE", recording)
    monkeypatch.setattr(hashwrite, "_WRITEBACK_EVERY", 2 << 20)
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    data = random.Random(8).randbytes((3 << 20) + 17)
    assert await store.write_upload(upload_id, 0, _Drained(data)) == len(data)
    assert await asyncio.to_thread(started.wait, 10)
    for _ in range(100):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(calls) == 2  # after 2 MiB, in the drain; the tail, after it
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await store.stat(Digest.of(data)) == len(data)
