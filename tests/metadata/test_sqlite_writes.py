"""SQLite write transactions: on the event loop while the database is free, on the
writer thread while it is locked, each committed once; the loop's log checkpointed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from dockyard.metadata import sqlite_writes
from dockyard.metadata.sqlite_writes import SqliteWriter, wait


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "writes.db"

    def create() -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (n INTEGER, payload TEXT)")

    await asyncio.to_thread(create)
    return path


@pytest.fixture
async def writer(database: Path) -> AsyncIterator[SqliteWriter]:
    writer = await asyncio.to_thread(SqliteWriter, str(database))
    yield writer
    await writer.close()


def insert(n: int, payload: str = "") -> tuple[list[str], Callable[[Connection], None]]:
    """A transaction body inserting row ``n``; the list collects the threads it ran on."""
    threads: list[str] = []

    def body(conn: Connection) -> None:
        threads.append(threading.current_thread().name)
        conn.execute(text("INSERT INTO t VALUES (:n, :p)"), {"n": n, "p": payload})

    return threads, body


async def rows(database: Path) -> list[int]:
    def read() -> list[int]:
        with sqlite3.connect(database) as conn:
            return [n for (n,) in conn.execute("SELECT n FROM t ORDER BY n")]

    return await asyncio.to_thread(read)


async def test_a_transaction_runs_on_the_loop_while_the_database_is_free(
    writer: SqliteWriter, database: Path
) -> None:
    threads, body = insert(1)
    await writer.run(body)
    assert threads == [threading.current_thread().name]
    assert await rows(database) == [1]


async def test_while_another_connection_holds_the_lock_the_writer_thread_waits(
    writer: SqliteWriter, database: Path
) -> None:
    holder = await asyncio.to_thread(sqlite3.connect, database, check_same_thread=False)
    await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
    await asyncio.to_thread(holder.execute, "INSERT INTO t VALUES (0, '')")
    threads, body = insert(1)
    pending = asyncio.ensure_future(writer.run(body))
    # The loop is not blocked: it goes on running while the transaction waits.
    started = time.monotonic()
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert time.monotonic() - started < 2
    assert not pending.done()
    await asyncio.to_thread(holder.commit)
    await asyncio.to_thread(holder.close)
    await asyncio.wait_for(pending, 10)
    assert threads == ["dockyard-sqlite-writer_0"]
    assert await rows(database) == [0, 1]
    # Free again: the next one is back on the loop.
    threads, body = insert(2)
    await writer.run(body)
    assert threads == [threading.current_thread().name]


async def test_a_transaction_found_busy_half_way_is_rolled_back_and_run_once_more(
    writer: SqliteWriter, database: Path
) -> None:
    attempts: list[str] = []

    def body(conn: Connection) -> None:
        attempts.append(threading.current_thread().name)
        conn.execute(text("INSERT INTO t VALUES (1, '')"))
        if len(attempts) == 1:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise OperationalError("INSERT", {}, busy)

    await writer.run(body)
    assert attempts == [threading.current_thread().name, "dockyard-sqlite-writer_0"]
    assert await rows(database) == [1]


async def test_other_errors_are_not_retried(writer: SqliteWriter, database: Path) -> None:
    attempts = 0

    def body(conn: Connection) -> None:
        nonlocal attempts
        attempts += 1
        conn.execute(text("INSERT INTO t VALUES (1, '')"))
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(OperationalError, match="no such table"):
        await writer.run(body)
    assert attempts == 1
    assert await rows(database) == []


async def test_a_body_that_waits_for_the_loop_runs_on_the_writer_thread(
    writer: SqliteWriter,
) -> None:
    async def answer() -> int:
        return 42

    def body(_conn: Connection) -> int:
        return wait(answer())

    with pytest.raises(RuntimeError, match="cannot wait"):
        await writer.run(body)
    assert await writer.run(body, on_loop=False) == 42


async def test_the_log_is_checkpointed_and_stays_short(
    writer: SqliteWriter, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's connection never checkpoints; the writer thread does, so the log is
    reused instead of growing with every commit."""
    monkeypatch.setattr(sqlite_writes, "CHECKPOINT_EVERY", 10)
    payload = "x" * 8000  # two or three pages of log a commit
    for n in range(300):
        _threads, body = insert(n, payload)
        await writer.run(body)
        in_flight = writer._checkpoint
        if in_flight is not None:
            await in_flight  # on a busy machine it may lag the next commits
    wal = database.with_name(database.name + "-wal")
    size = await asyncio.to_thread(lambda: wal.stat().st_size)
    # 300 commits of ~3 pages would make a log of ~3.6 MB; checkpoints every 10
    # commits keep it to a few dozen pages.
    assert size < 600_000
    assert await rows(database) == list(range(300))
