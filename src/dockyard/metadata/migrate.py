"""Schema migrations with Alembic, run on Dockyard's own async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).parent / "migrations"


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
        await conn.run_sync(_upgrade)


async def check(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaMismatch` unless the database is at this version's head."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
        if current is not None and current not in known:
            raise SchemaMismatch(
                f"database schema is at revision {current}, which this version of Dockyard "
                f"does not know (newest known: {head}); upgrade Dockyard"
            )
        raise SchemaMismatch(
            f"database schema is at revision {current or '(empty)'}, this version needs {head}; "
            "run `dockyard migrate`"
        )
