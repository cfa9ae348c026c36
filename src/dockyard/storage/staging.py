"""An upload's staging file on a local filesystem, step by step: the lock that orders
writers and commits across processes, the token stamped by each write, opening at an
offset, and verifying and publishing the finished file (see filesystem.py for the
layout and why). The functions that touch files block: the store calls them in worker
threads. :func:`wait_for_lock` polls from the event loop instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.oci.digest import Digest, Hasher, new_hasher
from dockyard.storage.hashwrite import FileSink, hash_and_write, start_writeback

# An upload's file is re-read in blocks this large when it must be hashed at commit.
_BLOCK = 4 << 20
# The algorithm hashed while bytes stream in; others are computed at commit.
STREAM_ALGORITHM = "sha256"
_TOKEN_SIZE = 32
# Waiting for another process's write to the same upload polls, so that the wait (as
# long as that client takes to send its chunk) never parks a worker thread.
_LOCK_POLL = (0.001, 0.05)
_CREATE_AT_ZERO = os.O_WRONLY | os.O_CREAT


@dataclass(slots=True)
class HashState:
    """An upload's running hash in this process: good for the file while it is
    ``offset`` bytes long and its lock file still holds ``token`` (no other write since)."""

    offset: int
    hasher: Hasher
    token: bytes


def lock_path(path: Path) -> Path:
    """The lock file of the upload file at ``path``."""
    return path.with_name(f"{path.name}.lock")


def close_opened_lock(opened: tuple[int, bool]) -> None:
    """Close what an :func:`open_lock` opened for a caller that went away."""
    os.close(opened[0])


def close_opened_write(opened: tuple[int, int | None, bytes]) -> None:
    """Close what a :func:`try_open_for_write` opened for a caller that went away."""
    lock_fd, fd, _ = opened
    close_upload(fd, lock_fd)


def open_lock(path: Path) -> tuple[int, bool]:
    """Open (creating) the lock file ``path`` and try to flock it: its descriptor, and
    whether it is locked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd, False
    return fd, True


def release(path: Path, lock_fd: int, upload_gone: bool) -> None:
    """Release the lock of the upload at ``path``; remove the lock file if it is gone."""
    try:
        if upload_gone:
            lock_path(path).unlink(missing_ok=True)  # maybe created just now, by us
    finally:
        os.close(lock_fd)


def close_upload(fd: int | None, lock_fd: int) -> None:
    """Close the upload file (if open), then release its lock."""
    try:
        if fd is not None:
            os.close(fd)
    finally:
        os.close(lock_fd)


def remove_upload(path: Path) -> None:
    path.unlink(missing_ok=True)
    lock_path(path).unlink(missing_ok=True)


def untouched(state: HashState | None) -> bool:
    """Whether ``state`` is that of an upload started here that no write has touched."""
    return state is not None and state.offset == 0 and not state.token


def publish_whole(data: bytes, staging: Path, digest: Digest, target: Path, fsync: bool) -> Digest:
    """Publish ``data`` at ``target`` through a new file at ``staging`` if it hashes to
    ``digest``; the digest it has (nothing written when that is not ``digest``)."""
    actual = Digest.of(data, digest.algorithm)
    if actual != digest:
        return actual
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            hash_and_write(fd, [data], None)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        _publish(staging, target, fsync)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return actual


def remove_staging(path: Path) -> None:
    """Remove the upload file at ``path``, its lock and any whole-blob file of it."""
    for found in path.parent.glob(f"{path.name}.*"):
        found.unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def running_hasher(state: HashState | None, offset: int, last_token: bytes) -> Hasher | None:
    """The hash to go on with for a write at ``offset``: the remembered one if the last
    write was this process's and ended there, a fresh one at 0, else None (commit will
    re-read the file)."""
    if state is not None and state.offset == offset and state.token == last_token:
        return state.hasher
    return new_hasher(STREAM_ALGORITHM) if offset == 0 else None


def write_and_commit(
    path: Path,
    last: bytes,
    offset: int,
    state: HashState | None,
    digest: Digest,
    target: Path,
    fsync: bool,
) -> Digest | None:
    """Write ``last`` at ``offset`` of the upload at ``path`` and commit it as
    :func:`commit_file` does, under the upload's lock: the digest the bytes have, or
    None, having done nothing, when another process holds the lock."""
    lock_fd, locked = open_lock(lock_path(path))
    if not locked:
        os.close(lock_fd)
        return None
    token = uuid.uuid4().hex.encode()
    try:
        fd, last_token = open_for_write(path, lock_fd, token, offset)
    except BaseException as e:
        release(path, lock_fd, isinstance(e, FileNotFoundError))
        raise
    hasher = running_hasher(state, offset, last_token)
    try:
        hash_and_write(fd, [last], hasher)
    except BaseException:
        close_upload(fd, lock_fd)
        raise
    os.close(fd)
    size = offset + len(last)
    written = HashState(size, hasher, token) if hasher is not None else None
    return commit_file(path, lock_fd, digest, size, written, target, fsync)


def commit_file(
    path: Path,
    lock_fd: int,
    digest: Digest,
    size: int,
    state: HashState | None,
    target: Path,
    fsync: bool,
) -> Digest:
    """Verify the upload at ``path`` and publish it at ``target``, or remove it.

    Runs holding the upload's lock, and releases it on return: no write reaches the file
    between the check and the publication. Returns the digest the bytes have.
    """
    try:
        hasher = None
        if (
            state is not None
            and state.offset == size
            and digest.algorithm == STREAM_ALGORITHM
            and state.token == os.pread(lock_fd, _TOKEN_SIZE, 0)
        ):
            hasher = state.hasher
        try:
            actual = _finish_file(path, size, digest.algorithm, hasher, fsync)
        except FileNotFoundError:
            lock_path(path).unlink(missing_ok=True)  # maybe created just now, by us
            raise
        if actual == digest:
            _publish(path, target, fsync)
        # Published, or mismatched and so kept nowhere: either way the upload is over.
        remove_upload(path)
        return actual
    finally:
        os.close(lock_fd)


async def wait_for_lock(fd: int) -> None:
    """Lock ``fd`` exclusively, waiting on the loop while another process holds it."""
    delay, longest = _LOCK_POLL
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)


def open_for_write(path: Path, lock_fd: int, token: bytes, offset: int) -> tuple[int, bytes]:
    """Open the upload file at ``offset`` (rewound); stamp ``token`` as the last writer.

    The first write (at 0) creates the file; a later one finds it or the upload is gone.
    Returns the descriptor and the token of the write before this one.
    """
    fd = os.open(path, _CREATE_AT_ZERO if offset == 0 else os.O_WRONLY, 0o644)
    try:
        last_token = os.pread(lock_fd, _TOKEN_SIZE, 0)
        # Stamped before the first byte changes: should this write fail half-way, no
        # remembered hash state matches the file any more.
        os.pwrite(lock_fd, token, 0)
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd, last_token


def try_open_for_write(path: Path, token: bytes, offset: int) -> tuple[int, int | None, bytes]:
    """Lock the upload at ``path`` and open it as :func:`open_for_write` does, in one trip
    to a thread: the lock's descriptor, the file's and the last writer's token; the file's
    is None (and the lock not held) while another process holds the lock."""
    lock_fd, locked = open_lock(lock_path(path))
    if not locked:
        return lock_fd, None, b""
    return lock_fd, *open_holding_lock(path, lock_fd, token, offset)


def open_holding_lock(path: Path, lock_fd: int, token: bytes, offset: int) -> tuple[int, bytes]:
    """:func:`open_for_write` with the upload's lock held on ``lock_fd``; released (and
    ``lock_fd`` closed) if that fails."""
    try:
        return open_for_write(path, lock_fd, token, offset)
    except BaseException as e:
        release(path, lock_fd, isinstance(e, FileNotFoundError))
        raise


class UploadSink:
    """Where a :class:`~dockyard.storage.base.DirectBody` appends to the upload at
    ``path``, every step in the body's reading thread (a :class:`BodySink`): lock and
    open at ``offset`` before the first byte (:meth:`begin`), hash and write each piece,
    close after the last (:meth:`end`). No trip to a thread of its own on the way.

    :meth:`begin` does not wait for a lock another process holds: it says not yet, and
    the store waits on the event loop (:func:`wait_for_lock` on ``lock_fd``) before
    draining again. :meth:`close` closes whatever is still open, after a failure.
    """

    def __init__(
        self,
        path: Path,
        token: bytes,
        offset: int,
        state: HashState | None,
        *,
        limit: int | None,
        writeback: bool,
    ) -> None:
        self._path = path
        self._token = token
        self._offset = offset
        self._state = state
        self._limit = limit
        self._writeback = writeback
        self.lock_fd: int | None = None
        self._fd: int | None = None
        self._tail: int | None = None
        self._file: FileSink | None = None
        self.hasher: Hasher | None = None

    @property
    def written(self) -> int:
        return self._file.written if self._file is not None else 0

    @property
    def open(self) -> bool:
        return self.lock_fd is not None

    def begin(self) -> bool:
        if self._file is not None:
            return True
        if self.lock_fd is None:
            lock_fd, fd, last_token = try_open_for_write(self._path, self._token, self._offset)
            self.lock_fd = lock_fd
            if fd is None:
                return False
        else:  # the store waited for the lock
            lock_fd, self.lock_fd = self.lock_fd, None  # released if the open fails
            fd, last_token = open_holding_lock(self._path, lock_fd, self._token, self._offset)
            self.lock_fd = lock_fd
        self._fd = fd
        self.hasher = running_hasher(self._state, self._offset, last_token)
        self._file = FileSink(fd, self.hasher, limit=self._limit, writeback=self._writeback)
        return True

    def __call__(self, piece: memoryview) -> None:
        assert self._file is not None, "begin() first"
        self._file(piece)

    def end(self) -> None:
        """Release the lock. The file is closed too, unless its last bytes still wait
        for writeback: that is :meth:`flush_tail`'s, once the client has its answer."""
        if self._file is not None and self._file.unflushed:
            self._tail, self._fd = self._fd, None
        self.close()

    @property
    def tail(self) -> bool:
        """Whether :meth:`flush_tail` has a file to flush and close."""
        return self._tail is not None

    def flush_tail(self) -> None:
        """Start writeback of what :meth:`end` left unflushed, and close the file.

        Run in a worker thread after the answer went out, while the client sends its
        next chunk: at the end of a body the writeback would otherwise delay the answer.
        Nothing is written through this descriptor any more, and the lock is released:
        another write or the commit may run meanwhile, on a descriptor of its own.
        """
        tail, self._tail = self._tail, None
        if tail is not None:
            try:
                start_writeback(tail)
            finally:
                os.close(tail)

    def close(self) -> None:
        """Close the file and release the lock, if open."""
        if self.lock_fd is not None:
            fd, lock_fd, self._fd, self.lock_fd = self._fd, self.lock_fd, None, None
            close_upload(fd, lock_fd)


def _finish_file(
    path: Path, size: int, algorithm: str, hasher: Hasher | None, fsync: bool
) -> Digest:
    """Truncate to ``size``, fsync, and return the digest (re-reading if no hasher).

    An empty upload may have no file yet: it is created then.
    """
    flags = os.O_RDWR | os.O_CREAT if size == 0 else os.O_RDWR
    with os.fdopen(os.open(path, flags, 0o644), "r+b") as f:
        f.truncate(size)
        if fsync:
            os.fsync(f.fileno())
        if hasher is None:
            hasher = new_hasher(algorithm)
            f.seek(0)
            _feed(hasher, f.read)
    return Digest(algorithm, hasher.hexdigest())


def _feed(hasher: Hasher, read: Callable[[int], bytes]) -> None:
    while block := read(_BLOCK):
        hasher.update(block)


def _publish(source: Path, target: Path, fsync: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
    if fsync:
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def import_file(path: Path, size: int, target: Path, fsync: bool) -> None:
    """Check ``path`` holds ``size`` bytes, make it durable, and move it to ``target``."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size != size:
            raise EOFError(f"{path} does not hold {size} bytes")
        if fsync:
            os.fsync(f.fileno())
    _publish(path, target, fsync)
