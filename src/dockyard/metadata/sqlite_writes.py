"""Write transactions on SQLite, each in one thread hop instead of one per statement.

aiosqlite sends every statement (and the cursor, fetch and close around it) to the
connection's worker thread and back. A push's short write transactions run five to ten
statements each, so most of their cost was those hops and the GIL hand-offs they cause.
Here a whole transaction is one synchronous function, run on the process's one writer
thread over a plain SQLAlchemy connection: the same Core statements, one hop. SQLite
lets one writer at a time hold the database anyway, so one writer thread per process
loses no parallelism; other processes on the same file queue on ``BEGIN IMMEDIATE``
(``busy_timeout``), off the event loop.

A transaction that must ask something of the event loop (whether a blob's bytes are
still stored) calls :func:`wait`; on PostgreSQL the same function runs inside
``AsyncConnection.run_sync``, where :func:`wait` awaits through SQLAlchemy's greenlet.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.util import await_

T = TypeVar("T")

PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON")

_writer = threading.local()


def tune(engine: Engine) -> None:
    """Dockyard's SQLite settings on every connection of ``engine``; a connection
    with the ``dockyard_write`` execution option begins with ``BEGIN IMMEDIATE``."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("dockyard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def off_loop() -> bool:
    """Whether this is the writer thread, where a blocking call stalls no event loop."""
    return getattr(_writer, "loop", None) is not None


def wait(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from inside a write transaction's function."""
    loop: asyncio.AbstractEventLoop | None = getattr(_writer, "loop", None)
    if loop is None:
        return await_(coroutine)
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


class SqliteWriter:
    """The writer thread and its connection (see the module docstring)."""

    def __init__(self, path: str) -> None:
        engine = create_engine(
            f"sqlite+pysqlite:///{path}",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
        tune(engine)
        self._engine = engine
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dockyard-sqlite-writer")
        self._conn: Connection | None = None

    async def run(self, body: Callable[[Connection], T]) -> T:
        """``body(connection)`` in one ``BEGIN IMMEDIATE`` transaction, committed
        when it returns and rolled back when it raises."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transact, loop, body)

    def _transact(self, loop: asyncio.AbstractEventLoop, body: Callable[[Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(dockyard_write=True)
        _writer.loop = loop
        try:
            with self._conn.begin():
                return body(self._conn)
        finally:
            _writer.loop = None

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)  # idle: the close above was its last job

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()
