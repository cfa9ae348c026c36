"""The BlobStore conformance suite: every implementation must pass all of it.

The contract is the docstrings of :class:`dockyard.storage.BlobStore`; the ``store``
and ``other_store`` fixtures (``conftest.py``) run each test on every backend, the
second instance standing for another process or replica sharing the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dockyard.oci import Digest
from dockyard.storage import (
    BlobEnumerator,
    BlobNotFound,
    BlobStore,
    DigestMismatch,
    SizeLimitExceeded,
    UploadNotFound,
)

MiB = 1 << 20


class ClientGone(Exception):
    """Stands for a client that disconnects half-way through a request body."""


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def cut_off(*parts: bytes) -> AsyncIterator[bytes]:
    """Yield ``parts``, then fail as a dropped connection does."""
    for part in parts:
        yield part
    raise ClientGone


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset and between seeds."""
    block = bytes((i * 7 + seed) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def new_upload(store: BlobStore) -> str:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    return upload_id


async def put_blob(store: BlobStore, data: bytes, algorithm: str = "sha256") -> Digest:
    upload_id = await new_upload(store)
    assert await store.write_upload(upload_id, 0, chunks(*split(data, 64 * 1024))) == len(data)
    digest = Digest.of(data, algorithm)
    await store.commit_upload(upload_id, digest, len(data))
    return digest


async def read_all(
    store: BlobStore, digest: Digest, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in store.read(digest, offset, length)])


async def assert_upload_gone(store: BlobStore, upload_id: str) -> None:
    # Past offset 0: a store may create the staging area with the first write.
    with pytest.raises(UploadNotFound):
        await store.write_upload(upload_id, 1, chunks(b"more"))
    with pytest.raises(UploadNotFound):
        await store.commit_upload(upload_id, Digest.of(b"x"), 1)


# -- reading and deleting -----------------------------------------------------------


async def test_missing_blob(store: BlobStore) -> None:
    digest = Digest.of(b"never stored")
    with pytest.raises(BlobNotFound):
        await store.stat(digest)
    with pytest.raises(BlobNotFound):
        await read_all(store, digest)
    await store.delete(digest)  # not an error


async def test_stat_and_read(store: BlobStore, other_store: BlobStore) -> None:
    data = pattern(3 * MiB + 17)
    digest = await put_blob(store, data)
    assert await store.stat(digest) == len(data)
    assert await read_all(store, digest) == data
    # Blobs are shared: another instance sees them at once.
    assert await other_store.stat(digest) == len(data)
    assert await read_all(other_store, digest) == data


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (0, 0),
        (1, None),
        (5, 10),
        (MiB - 3, 6),  # across an internal read block boundary
        (MiB, MiB),
        (2 * MiB + 1, None),
        (0, 2 * MiB + 5),  # exactly the whole blob
        (2 * MiB + 4, 1),  # the last byte
        (2 * MiB + 5, None),  # at the end: nothing
        (2 * MiB, 100),  # a length past the end stops at the end
    ],
)
async def test_read_range(store: BlobStore, offset: int, length: int | None) -> None:
    data = pattern(2 * MiB + 5, seed=3)
    digest = await put_blob(store, data)
    expected = data[offset:] if length is None else data[offset : offset + length]
    assert await read_all(store, digest, offset, length) == expected


async def test_delete(store: BlobStore, other_store: BlobStore) -> None:
    digest = await put_blob(store, b"short-lived")
    await store.delete(digest)
    with pytest.raises(BlobNotFound):
        await store.stat(digest)
    with pytest.raises(BlobNotFound):
        await other_store.stat(digest)
    with pytest.raises(BlobNotFound):
        await read_all(store, digest)
    await store.delete(digest)


async def test_delete_leaves_other_blobs(store: BlobStore) -> None:
    keep = await put_blob(store, b"keep me")
    drop = await put_blob(store, b"drop me")
    await store.delete(drop)
    assert await read_all(store, keep) == b"keep me"


async def test_empty_blob(store: BlobStore) -> None:
    digest = await put_blob(store, b"")
    assert digest == Digest.of(b"")
    assert await store.stat(digest) == 0
    assert await read_all(store, digest) == b""


async def test_local_path_is_the_blob_or_none(store: BlobStore) -> None:
    data = b"served with sendfile"
    digest = await put_blob(store, data)
    path = store.local_path(digest)
    if path is not None:
        assert await asyncio.to_thread(path.read_bytes) == data


async def test_redirect_url_serves_the_blob_or_is_none(store: BlobStore) -> None:
    data = b"fetched straight from the store"
    digest = await put_blob(store, data)
    url = await store.redirect_url(digest)
    if url is None:
        return  # this store streams blobs through Dockyard
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == data


async def test_enumerable_stores_list_exactly_their_blobs(store: BlobStore) -> None:
    if not isinstance(store, BlobEnumerator):
        return
    kept = await put_blob(store, b"kept")
    deleted = await put_blob(store, b"deleted")
    await store.delete(deleted)
    staged = await new_upload(store)
    await store.write_upload(staged, 0, chunks(b"still uploading"))
    assert [d async for d in store.list_blobs()] == [kept]


# -- uploads ------------------------------------------------------------------------


async def test_upload_in_one_chunk(store: BlobStore) -> None:
    data = b"one chunk"
    upload_id = await new_upload(store)
    assert await store.write_upload(upload_id, 0, chunks(data)) == len(data)
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await read_all(store, Digest.of(data)) == data
    await assert_upload_gone(store, upload_id)


@pytest.mark.parametrize(
    "sizes",
    [
        [1, 1, 1, 1],
        [0, 10, 0, 5],
        [4096] * 9,
        [5 * MiB, 1, 3 * MiB],  # writes larger than the stores' internal blocks
    ],
)
async def test_upload_in_many_writes(store: BlobStore, sizes: list[int]) -> None:
    data = pattern(sum(sizes), seed=1)
    upload_id = await new_upload(store)
    offset = 0
    for size in sizes:
        part = data[offset : offset + size]
        # Each write is itself a stream of network-sized chunks.
        offset = await store.write_upload(upload_id, offset, chunks(*split(part, 65536)))
    assert offset == len(data)
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await read_all(store, Digest.of(data)) == data


async def test_upload_with_empty_chunks(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    assert await store.write_upload(upload_id, 0, chunks(b"", b"a", b"", b"b", b"")) == 2
    await store.commit_upload(upload_id, Digest.of(b"ab"), 2)
    assert await read_all(store, Digest.of(b"ab")) == b"ab"


@pytest.mark.parametrize("written", [5, 6 * MiB])
async def test_rewind_to_the_committed_offset_after_an_interrupted_write(
    store: BlobStore, written: int
) -> None:
    first = pattern(1000, seed=1)
    rest = pattern(3000, seed=2)
    upload_id = await new_upload(store)
    committed = await store.write_upload(upload_id, 0, chunks(first))
    with pytest.raises(ClientGone):
        await store.write_upload(upload_id, committed, cut_off(*split(pattern(written, 9), MiB)))
    # The caller never counted the cut-off chunk: it resumes at its committed size.
    assert await store.write_upload(upload_id, committed, chunks(rest)) == len(first + rest)
    await store.commit_upload(upload_id, Digest.of(first + rest), len(first + rest))
    assert await read_all(store, Digest.of(first + rest)) == first + rest


async def test_an_interrupted_write_leaves_nothing_running(
    store: BlobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upload_id = await new_upload(store)
    with pytest.raises(ClientGone):
        await store.write_upload(upload_id, 0, cut_off(*split(pattern(6 * MiB), MiB)))
    # Work left running for that write would now land in whatever reuses its file
    # descriptors; open one, then wait for every worker thread to finish.
    victim = tmp_path / "victim"
    fd = os.open(victim, os.O_WRONLY | os.O_CREAT)
    try:
        await asyncio.get_running_loop().shutdown_default_executor()
    finally:
        os.close(fd)
    gc.collect()
    assert victim.stat().st_size == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_interrupted_first_write_then_restart(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    with pytest.raises(ClientGone):
        await store.write_upload(upload_id, 0, cut_off(pattern(9 * MiB, 4)))
    data = b"second attempt"
    assert await store.write_upload(upload_id, 0, chunks(data)) == len(data)
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await read_all(store, Digest.of(data)) == data


async def test_rewind_discards_bytes_past_the_offset(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"0123456789"))
    assert await store.write_upload(upload_id, 4, chunks(b"xy")) == 6
    await store.commit_upload(upload_id, Digest.of(b"0123xy"), 6)
    assert await read_all(store, Digest.of(b"0123xy")) == b"0123xy"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_commit_verifies_the_digest(store: BlobStore, algorithm: str) -> None:
    data = pattern(5 * MiB + 3, seed=7)
    digest = await put_blob(store, data, algorithm)
    assert digest.algorithm == algorithm
    assert await store.stat(digest) == len(data)
    assert await read_all(store, digest) == data


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_digest_mismatch_publishes_nothing(store: BlobStore, algorithm: str) -> None:
    data = b"what was sent"
    claimed = Digest.of(b"what the client claimed", algorithm)
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(data))
    with pytest.raises(DigestMismatch) as e:
        await store.commit_upload(upload_id, claimed, len(data))
    assert e.value.expected == claimed
    assert e.value.actual == Digest.of(data, algorithm)
    for digest in (claimed, Digest.of(data, algorithm)):
        with pytest.raises(BlobNotFound):
            await store.stat(digest)
    # The staged data is gone with it.
    await assert_upload_gone(store, upload_id)


async def test_commit_covers_only_the_size_given(store: BlobStore) -> None:
    # Bytes past ``size`` are an interrupted write the caller never counted.
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"counted", b"+stray"))
    await store.commit_upload(upload_id, Digest.of(b"counted"), 7)
    assert await read_all(store, Digest.of(b"counted")) == b"counted"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_commit_with_the_last_chunk_writes_and_publishes_it(
    store: BlobStore, algorithm: str
) -> None:
    data = pattern(300 * 1024, seed=11)
    upload_id = await new_upload(store)
    digest = Digest.of(data, algorithm)
    await store.commit_upload(upload_id, digest, len(data), data)
    assert await read_all(store, digest) == data
    await assert_upload_gone(store, upload_id)


async def test_commit_with_the_last_chunk_after_earlier_writes(
    store: BlobStore, other_store: BlobStore
) -> None:
    head, middle, tail = pattern(MiB + 5, 1), pattern(1000, 2), pattern(4097, 3)
    data = head + middle + tail
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(head))
    # Written by another instance: the first one's running hash no longer applies.
    await other_store.write_upload(upload_id, len(head), chunks(middle, b"+stray"))
    await store.commit_upload(upload_id, Digest.of(data), len(data), tail)
    assert await read_all(other_store, Digest.of(data)) == data


async def test_commit_with_a_last_chunk_that_does_not_match(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"head-"))
    claimed = Digest.of(b"head-tail")
    with pytest.raises(DigestMismatch) as e:
        await store.commit_upload(upload_id, claimed, 9, b"TAIL")
    assert e.value.actual == Digest.of(b"head-TAIL")
    with pytest.raises(BlobNotFound):
        await store.stat(claimed)
    await assert_upload_gone(store, upload_id)


async def test_commit_with_a_last_chunk_of_an_unknown_upload(store: BlobStore) -> None:
    # A last chunk after a first one that was never staged (at 0 a store may create it).
    with pytest.raises(UploadNotFound):
        await store.commit_upload(uuid.uuid4().hex, Digest.of(b"xy"), 2, b"y")


async def test_commit_of_a_blob_already_stored(store: BlobStore) -> None:
    data = b"pushed twice"
    first = await put_blob(store, data)
    second = await put_blob(store, data)
    assert first == second
    assert await read_all(store, first) == data


async def test_uploads_are_independent(store: BlobStore) -> None:
    a, b = await new_upload(store), await new_upload(store)
    await store.write_upload(a, 0, chunks(b"aaaa"))
    await store.write_upload(b, 0, chunks(b"bb"))
    await store.write_upload(a, 4, chunks(b"AA"))
    await store.commit_upload(b, Digest.of(b"bb"), 2)
    await store.commit_upload(a, Digest.of(b"aaaaAA"), 6)
    assert await read_all(store, Digest.of(b"aaaaAA")) == b"aaaaAA"
    assert await read_all(store, Digest.of(b"bb")) == b"bb"


@pytest.mark.parametrize("upload_id", ["0123456789abcdef0123456789abcdef", "../../etc", "a/b"])
async def test_unknown_upload(store: BlobStore, upload_id: str) -> None:
    await assert_upload_gone(store, upload_id)
    await store.abort_upload(upload_id)  # not an error


async def test_abort(store: BlobStore, other_store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"abandoned"))
    await store.abort_upload(upload_id)
    await assert_upload_gone(store, upload_id)
    await assert_upload_gone(other_store, upload_id)
    with pytest.raises(BlobNotFound):
        await store.stat(Digest.of(b"abandoned"))
    await store.abort_upload(upload_id)


async def test_abort_from_another_instance(store: BlobStore, other_store: BlobStore) -> None:
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"abandoned"))
    await other_store.abort_upload(upload_id)
    await assert_upload_gone(store, upload_id)


async def test_size_limit(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    assert await store.write_upload(upload_id, 0, chunks(b"12345", b"67890"), limit=10) == 10
    with pytest.raises(SizeLimitExceeded):
        await store.write_upload(upload_id, 10, chunks(b"abc", b"defg"), limit=6)
    # The upload lives on: the caller resumes at what it had committed.
    assert await store.write_upload(upload_id, 10, chunks(b"!"), limit=1) == 11
    await store.commit_upload(upload_id, Digest.of(b"1234567890!"), 11)
    assert await read_all(store, Digest.of(b"1234567890!")) == b"1234567890!"


async def test_size_limit_on_a_large_write(store: BlobStore) -> None:
    upload_id = await new_upload(store)
    with pytest.raises(SizeLimitExceeded):
        await store.write_upload(upload_id, 0, chunks(*split(pattern(12 * MiB), MiB)), 9 * MiB)
    data = pattern(MiB, seed=5)
    assert await store.write_upload(upload_id, 0, chunks(data), limit=MiB) == MiB
    await store.commit_upload(upload_id, Digest.of(data), MiB)
    assert await read_all(store, Digest.of(data)) == data


# -- several processes or replicas ----------------------------------------------------


async def test_chunks_written_by_another_instance(store: BlobStore, other_store: BlobStore) -> None:
    parts = [pattern(MiB + 1, 1), pattern(2 * MiB, 2), pattern(7, 3), pattern(MiB, 4)]
    data = b"".join(parts)
    upload_id = await new_upload(store)
    offset = 0
    for i, part in enumerate(parts):
        # Alternate between the instances, as a load balancer does.
        writer = store if i % 2 == 0 else other_store
        offset = await writer.write_upload(upload_id, offset, chunks(part))
    await store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await read_all(other_store, Digest.of(data)) == data


async def test_commit_on_another_instance(store: BlobStore, other_store: BlobStore) -> None:
    data = pattern(3 * MiB, 6)
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(data))
    await other_store.commit_upload(upload_id, Digest.of(data), len(data))
    assert await read_all(store, Digest.of(data)) == data


async def test_commit_verifies_bytes_another_instance_rewrote(
    store: BlobStore, other_store: BlobStore
) -> None:
    # Two replicas take the same chunk at the same offset (a client retrying, or racing
    # itself); the second one's bytes are what is staged. The first replica's running
    # hash of its own bytes must not vouch for them.
    legit, other = b"the bytes the digest is of", b"different bytes, same size"
    assert len(legit) == len(other)
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(legit))
    await other_store.write_upload(upload_id, 0, chunks(other))
    with pytest.raises(DigestMismatch) as e:
        await store.commit_upload(upload_id, Digest.of(legit), len(legit))
    assert e.value.actual == Digest.of(other)
    with pytest.raises(BlobNotFound):
        await store.stat(Digest.of(legit))


async def test_resume_after_another_instance_rewrote(
    store: BlobStore, other_store: BlobStore
) -> None:
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(b"first"))
    await other_store.write_upload(upload_id, 0, chunks(b"FIRST"))
    await store.write_upload(upload_id, 5, chunks(b"-second"))
    await store.commit_upload(upload_id, Digest.of(b"FIRST-second"), 12)
    assert await read_all(store, Digest.of(b"FIRST-second")) == b"FIRST-second"


async def test_a_write_racing_a_commit_never_changes_the_published_blob(
    store: BlobStore, other_store: BlobStore
) -> None:
    data = pattern(64 * 1024, 8)
    digest = Digest.of(data)
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(data))
    writer_ready = asyncio.Event()
    go_on = asyncio.Event()

    async def late_bytes() -> AsyncIterator[bytes]:
        # Another replica has opened the upload for a chunk whose body is slow to come.
        writer_ready.set()
        await go_on.wait()
        yield b"appended after the commit began"

    writer = asyncio.create_task(other_store.write_upload(upload_id, len(data), late_bytes()))
    await writer_ready.wait()
    commit = asyncio.create_task(store.commit_upload(upload_id, digest, len(data)))
    # A store may let the commit finish first or make it wait for the writer: give it
    # the chance to finish, bounded so that a waiting commit does not hang the test.
    await asyncio.wait({commit}, timeout=0.5)
    go_on.set()
    results = await asyncio.gather(writer, commit, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, UploadNotFound):
            raise result
    # Whatever the order, the published blob is exactly the bytes that were verified.
    assert await store.stat(digest) == len(data)
    assert await read_all(other_store, digest) == data


async def test_concurrent_commits_of_the_same_digest(
    store: BlobStore, other_store: BlobStore
) -> None:
    data = pattern(2 * MiB + 9, 11)
    digest = Digest.of(data)
    stores = [store, other_store] * 4
    uploads = [await new_upload(s) for s in stores]
    await asyncio.gather(
        *(
            s.write_upload(u, 0, chunks(*split(data, 256 * 1024)))
            for s, u in zip(stores, uploads, strict=True)
        )
    )
    await asyncio.gather(
        *(s.commit_upload(u, digest, len(data)) for s, u in zip(stores, uploads, strict=True))
    )
    assert await store.stat(digest) == len(data)
    assert await read_all(other_store, digest) == data
    for s, u in zip(stores, uploads, strict=True):
        await assert_upload_gone(s, u)


# -- importing a local file -----------------------------------------------------------


async def _spool_file(store: BlobStore, tmp_path: Path, data: bytes) -> Path:
    """A file holding ``data`` where the store would have it built."""
    path = (store.import_dir() or tmp_path) / f"spool{uuid.uuid4().hex}"
    await asyncio.to_thread(path.write_bytes, data)
    return path


async def test_import_file_publishes_it_and_consumes_it(
    store: BlobStore, other_store: BlobStore, tmp_path: Path
) -> None:
    data = pattern(3 * MiB + 5)
    digest = Digest.of(data)
    path = await _spool_file(store, tmp_path, data)
    await store.import_file(path, digest, len(data))
    assert await store.stat(digest) == len(data)
    assert await read_all(other_store, digest) == data
    assert not await asyncio.to_thread(path.exists)


async def test_import_file_of_a_blob_already_stored(store: BlobStore, tmp_path: Path) -> None:
    data = pattern(100_000, seed=3)
    digest = await put_blob(store, data)
    await store.import_file(await _spool_file(store, tmp_path, data), digest, len(data))
    assert await read_all(store, digest) == data


async def test_import_file_of_the_wrong_size_publishes_nothing(
    store: BlobStore, tmp_path: Path
) -> None:
    data = pattern(100_000, seed=4)
    digest = Digest.of(data)
    path = await _spool_file(store, tmp_path, data[:-1])
    with pytest.raises((EOFError, DigestMismatch)):
        await store.import_file(path, digest, len(data))
    with pytest.raises(BlobNotFound):
        await store.stat(digest)
    assert not await asyncio.to_thread(path.exists)


async def test_concurrent_uploads_of_different_blobs(store: BlobStore) -> None:
    blobs = [pattern(100_000 + i, i) for i in range(12)]
    digests = await asyncio.gather(*(put_blob(store, b) for b in blobs))
    for digest, data in zip(digests, blobs, strict=True):
        assert await read_all(store, digest) == data


async def test_a_published_blob_only_ever_appears_whole(
    store: BlobStore, other_store: BlobStore
) -> None:
    data = pattern(24 * MiB, 12)
    digest = Digest.of(data)
    upload_id = await new_upload(store)
    await store.write_upload(upload_id, 0, chunks(*split(data, MiB)))
    seen: list[int] = []
    committed = threading.Event()

    def watch_file() -> None:
        # As fast as a thread can, for as long as the commit runs.
        path = other_store.local_path(digest)
        deadline = time.monotonic() + 60
        while path is not None and not committed.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                seen.append(path.stat().st_size)

    async def watch_store() -> None:
        while not committed.is_set():
            try:
                seen.append(await other_store.stat(digest))
            except BlobNotFound:
                pass
            else:
                assert await read_all(other_store, digest, len(data) - 10) == data[-10:]

    watchers = [
        asyncio.create_task(asyncio.to_thread(watch_file)),
        asyncio.create_task(watch_store()),
    ]
    try:
        await store.commit_upload(upload_id, digest, len(data))
    finally:
        committed.set()
        await asyncio.gather(*watchers)
    assert set(seen) <= {len(data)}
    assert await other_store.stat(digest) == len(data)
