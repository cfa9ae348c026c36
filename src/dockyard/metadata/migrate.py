"""Schema migrations with Alembic, run on Dockyard's own async engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock serialising migrations ("dockyard" in ASCII, truncated).
_LOCK_KEY = 0x646F636B79


class SchemaMismatch(Exception):
    """The database's schema revision is not the one this version of Dockyard runs."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this version of Dockyard knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> tuple[str, set[str]]:
    """The head revision and every revision this version of Dockyard knows."""
    scripts = ScriptDirectory.from_config(_config())
    return head_revision(), {s.revision for s in scripts.walk_revisions()}


def missing_revisions(current: str | None) -> list[str]:
    """The migrations between ``current`` and head, oldest first, as "<rev> (<message>)"."""
    scripts = ScriptDirectory.from_config(_config())
    pending = list(scripts.iterate_revisions("head", current or "base"))
    pending.reverse()
    return [f"{s.revision} ({(s.doc or '').strip().splitlines()[0]})" for s in pending]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None for an empty database."""

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""

    def _upgrade(conn: Connection) -> None:
        command.upgrade(_config(conn), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two `dockyard migrate` at once (a rolling deploy): the second waits for
            # the first, then finds nothing left to do.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        await conn.run_sync(_upgrade)


async def check(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaMismatch` unless the database is at this version's head."""
    current = await current_revision(engine)
    # Reading the migration scripts is file I/O: keep it off the event loop.
    head, known = await asyncio.to_thread(_known_revisions)
    if current != head:
        if current is not None and current not in known:
            raise SchemaMismatch(
                f"database schema is at revision {current}, which this version of Dockyard "
                f"does not know (newest known: {head}); upgrade Dockyard"
            )
        missing = await asyncio.to_thread(missing_revisions, current)
        raise SchemaMismatch(
            f"database schema is at revision {current or '(empty)'}, this version needs {head}; "
            f"missing migrations: {', '.join(missing)}; run `dockyard migrate`"
        )
