"""Thread jobs and cancelled callers: cleanup.in_thread runs a job handed to a thread
even if its caller is cancelled, and closes what it opened for a caller that went away;
BlockWriter.settle sees the block being written out before its caller closes the file.

A plain ``await asyncio.to_thread(close)`` whose caller is cancelled while the job still
waits for a free thread is dropped: the upload lock it should have released stayed held,
and the client's next write to the upload waited for ever (seen under load, in the test
of a body cut off part-way, tests/api/test_socket_body.py).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dockyard.storage import cleanup, hashwrite
from tests.helpers import eventually


@pytest.fixture
async def busy_pool() -> AsyncIterator[threading.Event]:
    """The loop's default executor down to one thread, kept busy until the event is set."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1)
    loop.set_default_executor(pool)
    release = threading.Event()
    busy = loop.run_in_executor(None, release.wait)
    yield release
    release.set()
    await busy


async def _cancel_while_queued(job: Coroutine[Any, Any, object]) -> None:
    task = asyncio.ensure_future(job)
    await asyncio.sleep(0.05)  # the job is queued behind the busy thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_close_queued_when_its_caller_is_cancelled_still_runs(
    busy_pool: threading.Event,
) -> None:
    closed = threading.Event()
    await _cancel_while_queued(cleanup.in_thread(closed.set))
    busy_pool.set()
    assert await asyncio.to_thread(closed.wait, 10)


async def test_to_thread_alone_drops_the_queued_job(busy_pool: threading.Event) -> None:
    """The behaviour in_thread works around: asyncio cancels the queued job."""
    ran = threading.Event()
    await _cancel_while_queued(asyncio.to_thread(ran.set))
    busy_pool.set()
    await asyncio.to_thread(ran.wait, 0.5)
    assert not ran.is_set()


async def test_what_a_job_opened_for_a_cancelled_caller_is_handed_to_abandoned(
    busy_pool: threading.Event,
) -> None:
    abandoned: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()

    def open_something() -> tuple[int, bool]:
        return 7, True

    job = cleanup.in_thread(open_something, abandoned=abandoned.put_nowait)
    await _cancel_while_queued(job)
    busy_pool.set()
    assert await asyncio.wait_for(abandoned.get(), 10) == (7, True)


async def test_a_job_that_fails_for_a_cancelled_caller_is_logged(
    busy_pool: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    failed = threading.Event()

    def close() -> None:
        failed.set()
        raise OSError("bad descriptor")

    await _cancel_while_queued(cleanup.in_thread(close))
    busy_pool.set()
    await asyncio.to_thread(failed.wait, 10)
    await eventually(
        lambda: _true(any("bad descriptor" in str(r.exc_info) for r in caplog.records)),
        "the failure to be logged",
    )


async def _true(value: bool) -> bool:
    return value


async def test_a_failing_close_is_raised_to_its_caller() -> None:
    def close() -> None:
        raise OSError("bad descriptor")

    with pytest.raises(OSError, match="bad descriptor"):
        await cleanup.in_thread(close)


async def test_settle_waits_for_the_block_being_written_even_when_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BlockWriter's settle, cancelled (again) while a block is being written, still
    waits for it: the caller closes the descriptor next, and a number closed under the
    thread could be reused, the block landing in some other file."""
    release = threading.Event()
    real = hashwrite.hash_and_write

    def slow(fd: int, block: list[bytes], *args: Any) -> None:
        release.wait(10)
        real(fd, block, *args)

    monkeypatch.setattr(hashwrite, "hash_and_write", slow)
    path = tmp_path / "upload"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        writer = hashwrite.BlockWriter(fd, None, min_block=4, max_waiting=1 << 20)
        await writer.add(b"block")  # starts the slow write
        settling = asyncio.ensure_future(writer.settle())
        for _ in range(2):
            await asyncio.sleep(0.05)
            settling.cancel()
        await asyncio.sleep(0.05)
        assert not settling.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await settling
    finally:
        os.close(fd)
    assert path.read_bytes() == b"block"
