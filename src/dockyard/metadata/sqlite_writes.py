"""Write transactions on SQLite, on the event loop when the lock is free.

A push's write transactions are short: five to ten statements on a handful of rows,
and in WAL mode with ``synchronous=NORMAL`` a commit appends to the log without an
fsync. Such a transaction takes far less time than handing it to a thread and back
(each hand-off wakes a thread, passes the GIL and wakes the loop again), so it runs
right on the event loop, as the hot reads of :mod:`dockyard.metadata.sqlite_reads` do.

The loop never waits for the lock, though. Its connection has no busy timeout: when
another process (or this one's writer thread) holds the database, ``BEGIN IMMEDIATE``
fails at once and the transaction goes to the process's one writer thread instead,
where it queues on the lock (``busy_timeout``) off the loop. A transaction that found
the database busy half-way is rolled back before it is retried there, so each body
runs to its commit once. The loop's connection never checkpoints either, since a
checkpoint fsyncs: every :data:`CHECKPOINT_EVERY` commits, the writer thread copies
the log back into the database (``wal_checkpoint(PASSIVE)``, which waits for nobody).

A transaction that must ask something of the event loop (whether a blob's bytes are
still stored) calls :func:`wait`; it runs on the writer thread (``on_loop=False``). On
PostgreSQL the same function runs inside ``AsyncConnection.run_sync``, where
:func:`wait` awaits through SQLAlchemy's greenlet.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.util import await_

from dockyard.metadata.queries import write_statements
from dockyard.metadata.sqlite_direct import DirectConnection, Prepared

T = TypeVar("T")

log = logging.getLogger("dockyard.metadata")

PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON")
# The event loop's connection: never wait for the lock, never checkpoint.
_LOOP_PRAGMAS = (*PRAGMAS, "busy_timeout=0", "wal_autocheckpoint=0")
# About a thousand pages of log (SQLite's own default checkpoint size) at a push's
# three to six pages a transaction.
CHECKPOINT_EVERY = 200

_writer = threading.local()


class _Busy(Exception):
    """The database was locked when the event loop tried to write."""


def tune(engine: Engine, pragmas: tuple[str, ...] = PRAGMAS) -> None:
    """Dockyard's SQLite settings (``pragmas``) on every connection of ``engine``; a
    connection with the ``dockyard_write`` execution option begins ``BEGIN IMMEDIATE``."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("dockyard_write", False)
        sql = "BEGIN IMMEDIATE" if write else "BEGIN"
        driver: object = conn.connection.dbapi_connection
        if isinstance(driver, sqlite3.Connection):
            # Straight to the driver: through exec_driver_sql, SQLAlchemy's execution
            # context cost a third of a small transaction's time on the event loop. Its
            # errors are wrapped as SQLAlchemy wraps them (a busy database included).
            try:
                driver.execute(sql).close()
            except sqlite3.Error as e:
                raise DBAPIError.instance(sql, None, e, sqlite3.Error) from e
        else:  # aiosqlite's adapter
            conn.exec_driver_sql(sql)


def in_sqlite_writer() -> bool:
    """Whether this runs inside one of :class:`SqliteWriter`'s transactions, where the
    whole database is held anyway: a quick look at a local file costs nobody more."""
    return getattr(_writer, "inside", False)


def wait(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from inside a write transaction's function."""
    loop: asyncio.AbstractEventLoop | None = getattr(_writer, "loop", None)
    if loop is not None:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
    if in_sqlite_writer():
        coroutine.close()
        raise RuntimeError("a transaction run on the event loop cannot wait for it")
    return await_(coroutine)


def _is_busy(error: OperationalError) -> bool:
    orig = error.orig
    return isinstance(orig, sqlite3.OperationalError) and orig.sqlite_errorcode in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def _write_engine(path: str, pragmas: tuple[str, ...]) -> Engine:
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )
    tune(engine, pragmas)
    return engine


class SqliteWriter:
    """The loop's connection, the writer thread and its connection (see the module
    docstring). Construct it off the loop: it opens the database file."""

    def __init__(self, path: str) -> None:
        self._engines = [_write_engine(path, _LOOP_PRAGMAS), _write_engine(path, PRAGMAS)]
        self._prepared = Prepared(write_statements("sqlite"))
        self._loop_conn = self._direct(self._engines[0])
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dockyard-sqlite-writer")
        self._conn: Connection | None = None
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None

    async def run(self, body: Callable[[Connection], T], *, on_loop: bool = True) -> T:
        """``body(connection)`` in one ``BEGIN IMMEDIATE`` transaction, committed
        when it returns and rolled back when it raises; on the loop if ``on_loop`` and
        the database is free, else on the writer thread."""
        if on_loop:
            try:
                result = self._on_loop(body)
            except _Busy:
                pass
            else:
                self._committed_on_loop()
                return result
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transact, loop, body)

    def _on_loop(self, body: Callable[[Connection], T]) -> T:
        _writer.inside = True
        try:
            with self._loop_conn.begin():
                return body(self._loop_conn)
        except OperationalError as e:
            if _is_busy(e):
                raise _Busy from e
            raise
        finally:
            _writer.inside = False

    def _committed_on_loop(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._since_checkpoint = 0
            loop = asyncio.get_running_loop()
            self._checkpoint = loop.run_in_executor(self._thread, self._checkpoint_log)
            self._checkpoint.add_done_callback(self._checkpointed)

    def _checkpoint_log(self) -> None:
        # On the driver's connection: SQLAlchemy's would open a transaction around it,
        # and SQLite checkpoints only outside one.
        dbapi = self._thread_conn().connection.dbapi_connection
        assert dbapi is not None
        dbapi.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not done.cancelled() and done.exception() is not None:
            # The next commits try again; SQLite's log stays correct meanwhile, just long.
            log.warning("SQLite checkpoint failed: %s", done.exception())

    def _direct(self, engine: Engine) -> Connection:
        """A writing connection of ``engine`` that runs the prepared statements directly."""
        conn = engine.connect().execution_options(dockyard_write=True)
        return cast(Connection, DirectConnection(conn, self._prepared))

    def _thread_conn(self) -> Connection:
        if self._conn is None:
            self._conn = self._direct(self._engines[1])
        return self._conn

    def _transact(self, loop: asyncio.AbstractEventLoop, body: Callable[[Connection], T]) -> T:
        conn = self._thread_conn()
        _writer.loop = loop
        _writer.inside = True
        try:
            with conn.begin():
                return body(conn)
        finally:
            _writer.loop = None
            _writer.inside = False

    async def close(self) -> None:
        """Close the connections and stop the thread."""
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)  # idle: the close above was its last job

    def _close(self) -> None:
        for conn in (self._conn, self._loop_conn):
            if conn is not None:
                conn.close()
        self._conn = None
        for engine in self._engines:
            engine.dispose()
