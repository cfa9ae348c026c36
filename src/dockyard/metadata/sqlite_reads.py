"""Point reads on SQLite, answered on the event loop without a thread hop.

aiosqlite sends every statement to a worker thread and back; for a primary-key lookup
that SQLite answers from its page cache in microseconds, the two hops (and the GIL
hand-offs they cause under load) cost far more than the query. In WAL mode a reader
never waits for a writer, so these lookups cannot stall the loop behind a lock. Only
the hot reads come here: the single-row lookups of blob and manifest requests, and the
tag list and catalog pages (an index range scan that stops after the rows asked for;
the store bounds how many). Every write and every multi-statement transaction still
goes through the async engine.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Select

_DIALECT = sqlite.dialect(paramstyle="named")


def compile_sql(statement: Select[Any]) -> str:
    """``statement`` as SQLite SQL with ``:name`` parameters."""
    return str(statement.compile(dialect=_DIALECT))


class SqliteReader:
    """A read-only connection for point lookups (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA query_only=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._sql: dict[int, str] = {}

    def _compiled(self, statement: Select[Any]) -> str:
        sql = self._sql.get(id(statement))
        if sql is None:
            sql = self._sql[id(statement)] = compile_sql(statement)
        return sql

    def one(self, statement: Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row ``statement`` returns for ``params``, or None."""
        row: tuple[Any, ...] | None = self._conn.execute(
            self._compiled(statement), params
        ).fetchone()
        return row

    def first_column(self, statement: Select[Any], params: dict[str, Any], limit: int) -> list[Any]:
        """The first column of the first ``limit`` rows ``statement`` returns for ``params``.

        SQLite produces rows as they are fetched: with an ``ORDER BY`` an index serves,
        fetching ``limit`` of them reads no further (no ``LIMIT`` clause needed).
        """
        if limit <= 0:
            return []  # fetchmany(0) would fetch them all
        rows = self._conn.execute(self._compiled(statement), params).fetchmany(limit)
        return [row[0] for row in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
