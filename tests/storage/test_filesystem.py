"""What only the filesystem store promises: its layout, and no files left behind.

Everything else it promises, every store does: see ``test_blobstore.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci import Digest
from dockyard.storage import BlobNotFound, DigestMismatch, FilesystemBlobStore, UploadNotFound


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobstore"


@pytest.fixture
def store(root: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(root)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def test_blob_layout(store: FilesystemBlobStore, root: Path) -> None:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks(b"layer"))
    digest = Digest.of(b"layer", "sha512")
    await store.commit_upload(upload_id, digest, 5)
    path = root / "blobs" / "sha512" / digest.encoded[:2] / digest.encoded
    assert store.local_path(digest) == path
    assert path.read_bytes() == b"layer"
    assert files_under(root / "uploads") == []


async def test_nothing_is_left_in_uploads(store: FilesystemBlobStore, root: Path) -> None:
    committed, mismatched, aborted = (uuid.uuid4().hex for _ in range(3))
    for upload_id in (committed, mismatched, aborted):
        await store.start_upload(upload_id)
        await store.write_upload(upload_id, 0, chunks(b"bytes"))
    await store.commit_upload(committed, Digest.of(b"bytes"), 5)
    with pytest.raises(DigestMismatch):
        await store.commit_upload(mismatched, Digest.of(b"other"), 5)
    await store.abort_upload(aborted)
    never_started = uuid.uuid4().hex
    with pytest.raises(UploadNotFound):
        await store.write_upload(never_started, 1, chunks(b"x"))
    with pytest.raises(UploadNotFound):
        await store.commit_upload(never_started, Digest.of(b"x"), 1)
    assert files_under(root / "uploads") == []


async def test_starting_an_upload_writes_nothing(store: FilesystemBlobStore, root: Path) -> None:
    """The file appears with the first write; an empty upload commits without one."""
    first, empty = uuid.uuid4().hex, uuid.uuid4().hex
    for upload_id in (first, empty):
        await store.start_upload(upload_id)
    assert files_under(root / "uploads") == []
    await store.write_upload(first, 0, chunks(b"abc"))
    assert files_under(root / "uploads") == sorted([first, f"{first}.lock"])
    await store.commit_upload(first, Digest.of(b"abc"), 3)
    await store.commit_upload(empty, Digest.of(b""), 0)
    assert await store.stat(Digest.of(b"")) == 0
    assert files_under(root / "uploads") == []


async def test_an_upload_without_a_lock_file_still_works(
    store: FilesystemBlobStore, root: Path
) -> None:
    # Uploads staged by an earlier version have no lock file: it is created on demand.
    upload_id = uuid.uuid4().hex
    (root / "uploads" / upload_id).write_bytes(b"staged earlier")
    assert await store.write_upload(upload_id, 14, chunks(b", finished now")) == 28
    await store.commit_upload(upload_id, Digest.of(b"staged earlier, finished now"), 28)
    assert files_under(root / "uploads") == []


async def test_a_whole_blob_in_one_chunk_is_published_from_a_file_of_its_own(
    store: FilesystemBlobStore, root: Path
) -> None:
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    for upload_id in (good, bad):
        await store.start_upload(upload_id)
    await store.commit_upload(good, Digest.of(b"whole blob"), 10, b"whole blob")
    published = store.local_path(Digest.of(b"whole blob"))
    assert published is not None
    assert published.read_bytes() == b"whole blob"
    with pytest.raises(DigestMismatch) as e:
        await store.commit_upload(bad, Digest.of(b"claimed"), 7, b"another")
    assert e.value.actual == Digest.of(b"another")
    with pytest.raises(BlobNotFound):
        await store.stat(Digest.of(b"claimed"))
    assert files_under(root / "uploads") == []


async def test_a_whole_blob_after_bytes_were_staged_replaces_them(
    store: FilesystemBlobStore, root: Path
) -> None:
    """A client that starts over at 0 with the whole blob, after a first try staged
    some bytes: those are discarded, as for any write at 0."""
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks(b"half of a fir"))
    await store.commit_upload(upload_id, Digest.of(b"the blob"), 8, b"the blob")
    published = store.local_path(Digest.of(b"the blob"))
    assert published is not None
    assert published.read_bytes() == b"the blob"
    assert files_under(root / "uploads") == []


async def test_staging_is_listed_by_upload_and_removed_whole(
    store: FilesystemBlobStore, root: Path
) -> None:
    upload_id = uuid.uuid4().hex
    await store.start_upload(upload_id)
    await store.write_upload(upload_id, 0, chunks(b"staged"))
    (root / "uploads" / f"{upload_id}.0123abcd").write_bytes(b"a whole blob, left")
    (root / "uploads" / "tmp_spool-file").write_bytes(b"not an upload's")
    listed = await store.list_staging()
    assert [u for u, _ in listed] == [upload_id]
    assert listed[0][1] == max(p.stat().st_mtime for p in (root / "uploads").glob(f"{upload_id}*"))
    await store.remove_staging(upload_id)
    assert files_under(root / "uploads") == ["tmp_spool-file"]
    assert await store.list_staging() == []
