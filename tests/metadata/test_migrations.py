"""Alembic migrations: they build exactly metadata/schema.py, and ``check`` guards it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dockyard.metadata import SchemaMismatch, check, current_revision, head_revision, upgrade
from dockyard.metadata.schema import metadata


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def _head() -> str:
    # head_revision() reads the migration scripts: not on the event loop.
    return await asyncio.to_thread(head_revision)


async def test_migrations_create_exactly_the_schema(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        differences = await conn.run_sync(_differences)
        tables = await conn.run_sync(_tables)
    assert differences == []
    assert tables == {*metadata.tables, "alembic_version"}


async def test_check_refuses_an_empty_database(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None
    with pytest.raises(SchemaMismatch, match="dockyard migrate") as e:
        await check(engine)
    assert "(empty)" in str(e.value)
    assert await _head() in str(e.value)


async def test_upgrade_from_empty_to_head_twice(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await current_revision(engine) == await _head()
    await check(engine)
    await upgrade(engine)  # nothing left to do, and no error for it
    assert await current_revision(engine) == await _head()
    await check(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_check_refuses_a_revision_it_does_not_know(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
    with pytest.raises(SchemaMismatch, match="upgrade Dockyard"):
        await check(engine)


async def test_check_refuses_an_older_revision(engine: AsyncEngine) -> None:
    first = "0001"
    await upgrade(engine, first)
    assert await current_revision(engine) == first
    if await _head() == first:
        await check(engine)
        return
    with pytest.raises(SchemaMismatch, match="dockyard migrate"):
        await check(engine)
    await upgrade(engine)
    await check(engine)


async def test_the_comparison_notices_drift(engine: AsyncEngine) -> None:
    # Guards the first test against passing vacuously: a dropped index, a missing
    # column and a changed column type must all show up.
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_tags_repository_id_manifest_digest"))
        await conn.execute(text("DROP TABLE uploads"))
        await conn.execute(text("CREATE TABLE uploads (id INTEGER PRIMARY KEY)"))
    async with engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    kinds = {d[0][0] if isinstance(d, list) else d[0] for d in differences}
    assert "add_index" in kinds
    assert "add_column" in kinds
    assert "modify_type" in kinds
