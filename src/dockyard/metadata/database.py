"""The database under the metadata store: its fast paths, and how a transaction runs.

Every write transaction starts with the database's write lock taken: on SQLite
``BEGIN IMMEDIATE``, so concurrent writers queue on the database lock instead of failing
half-way through an upgrade; on PostgreSQL, row locks taken by the statements.

The writes of a push are plain functions of a synchronous connection, run by
:meth:`Database._transact`: on a SQLite file right on the event loop, or in one
hop to the writer thread while the database is locked
(:mod:`dockyard.metadata.sqlite_writes`), elsewhere through ``run_sync`` on the
async engine. The same function, the same statements (:mod:`dockyard.metadata.queries`),
on either database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dockyard.metadata import postgres
from dockyard.metadata import queries as q
from dockyard.metadata.postgres_reads import PostgresReader
from dockyard.metadata.sqlite_reads import SqliteReader
from dockyard.metadata.sqlite_writes import SqliteWriter

T = TypeVar("T")


class Database:
    """An engine, the fast read (and SQLite write) paths beside it, and transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        self._reader: SqliteReader | None = None
        self._pg_reader: PostgresReader | None = None
        self._writer: SqliteWriter | None = None
        self._upserts = q.upserts(self._dialect)

    async def open(self) -> None:
        """Prepare the fast read path (SQLite files, PostgreSQL); call once before serving."""
        database = self.engine.url.database
        if self._dialect == "sqlite" and database and database != ":memory:":
            self._reader = await asyncio.to_thread(SqliteReader, database)
            self._writer = await asyncio.to_thread(SqliteWriter, database)
        elif self._dialect == "postgresql":
            options = self.engine.get_execution_options()
            self._pg_reader = await PostgresReader.connect(
                self.engine.url,
                self.engine.pool.size(),  # type: ignore[attr-defined]
                options.get(postgres.SERVER_SETTINGS, {}),
            )

    async def close(self) -> None:
        """Close the fast read path and dispose of the connection pool."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._pg_reader is not None:
            await self._pg_reader.close()
            self._pg_reader = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self.engine.dispose()

    async def ping(self) -> None:
        """Run a trivial query; raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(dockyard_write=True)
            async with conn.begin():
                yield conn

    async def _transact(self, body: Callable[[Connection], T], *, on_loop: bool = True) -> T:
        """``body(connection)`` in one write transaction (see the module docstring);
        ``on_loop=False`` for a body that waits for the event loop. On PostgreSQL a body
        rolled back by a deadlock runs again (:func:`postgres.worth_retrying`)."""
        if self._writer is not None:
            return await self._writer.run(body, on_loop=on_loop)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._write() as conn:
                    return await conn.run_sync(body)
            except DBAPIError as e:
                if not postgres.worth_retrying(e, attempt):
                    raise

    def _insert(self, table: Any) -> sqlite.Insert | postgresql.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)
