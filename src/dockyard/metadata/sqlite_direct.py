"""A push's prepared statements, run straight on SQLite's cursor inside a transaction.

A push's write transactions run a handful of short statements each. SQLite answers each
in microseconds; SQLAlchemy's ``Connection.execute`` spends several times that around
it (execution context, parameter processing, result objects, events), and on the event
loop that cost is what bounds how many small pushes a worker takes. The statements are
constants (:mod:`dockyard.metadata.queries`), so each is compiled once, here, into its
SQL and the type processing its parameters need (dates, JSON), exactly as SQLAlchemy
would render and convert them; executing one is then a call to the driver.

:class:`DirectConnection` stands in for the SQLAlchemy connection a transaction body
receives: a prepared statement runs directly, on the same driver connection and in the
same transaction; anything else (a statement built on the fly, an ``IN`` list that must
be rendered per call, a column type whose results need converting) goes to the
SQLAlchemy connection it wraps. Bodies are the same functions PostgreSQL runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = sqlite.dialect(paramstyle="named")

Processor = Callable[[Any], Any]
Params = Mapping[str, Any]


class _Plan:
    """A statement compiled once: its SQL and the processors of its parameters."""

    __slots__ = ("processors", "sql")

    def __init__(self, sql: str, processors: dict[str, Processor]) -> None:
        self.sql = sql
        self.processors = processors

    def bind(self, params: Params) -> Params:
        if not self.processors:
            return params
        bound = dict(params)
        for name, process in self.processors.items():
            if name in bound:
                bound[name] = process(bound[name])
        return bound


def plan(statement: ClauseElement, keys: Iterable[str]) -> _Plan | None:
    """``statement`` compiled for SQLite with parameters ``keys``; None when it cannot
    run directly (SQLAlchemy has work to do at each execution)."""
    compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT, column_keys=list(keys)))
    if (
        compiled.post_compile_params
        or compiled.literal_execute_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
    ):
        return None
    if isinstance(statement, Select):
        columns = list(statement.selected_columns)
    else:
        columns = list(compiled.returning or ())
    for column in columns:
        if column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) is not None:
            return None
    processors: dict[str, Processor] = {}
    for name, parameter in compiled.binds.items():
        process = parameter.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
        if process is not None:
            processors[name] = process
    return _Plan(str(compiled), processors)


class Prepared:
    """The statements that may run directly, each planned on first use per set of
    parameter names. Only constants belong here: plans are keyed by the statement."""

    def __init__(self, statements: Iterable[ClauseElement]) -> None:
        self._statements = {id(s): s for s in statements}
        self._plans: dict[tuple[int, tuple[str, ...]], _Plan | None] = {}

    def get(self, statement: ClauseElement, keys: tuple[str, ...]) -> _Plan | None:
        if id(statement) not in self._statements:
            return None
        key = (id(statement), keys)
        try:
            return self._plans[key]
        except KeyError:
            found = self._plans[key] = plan(statement, keys)
            return found


class Rows:
    """The rows (all fetched) and row count of a directly run statement: the part of
    SQLAlchemy's ``Result`` that transaction bodies use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self._rows)}")
        return self.scalar()

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class DirectConnection:
    """The SQLAlchemy connection of a transaction, with prepared statements run directly
    on its driver connection (see the module docstring)."""

    def __init__(self, conn: Connection, prepared: Prepared) -> None:
        self._conn = conn
        self._prepared = prepared
        # One driver connection for the life of ``conn`` (the writer's pools are static).
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        self._cursor = dbapi.cursor()

    def execute(self, statement: Any, parameters: Params | Sequence[Params] | None = None) -> Any:
        """Run ``statement`` (with one set of parameters, or a list of them)."""
        batch = list(parameters) if isinstance(parameters, Sequence) else None
        single = cast(Params, parameters or {})
        found = self._prepared.get(statement, tuple(batch[0] if batch else single))
        if found is None:
            return self._conn.execute(statement, parameters)
        cursor = self._cursor
        if batch is not None:
            cursor.executemany(found.sql, [found.bind(p) for p in batch])
            return Rows([], cursor.rowcount)
        cursor.execute(found.sql, found.bind(single))
        return Rows(list(cursor.fetchall()), cursor.rowcount)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def close(self) -> None:
        """Close the cursor and the connection."""
        self._cursor.close()
        self._conn.close()
