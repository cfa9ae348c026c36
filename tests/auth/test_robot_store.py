"""The ``robots`` table: its migration matches the schema; the core's robot operations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from dockyard.app import open_registry
from dockyard.config import Settings
from dockyard.core import Registry, RobotError, RobotRecord
from dockyard.metadata.schema import metadata as schema


@pytest.fixture
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    """The registry core on a fresh, migrated SQLite database."""
    core = await open_registry(settings)
    yield core
    await core.meta.close()


def _robot(name: str, **changes: Any) -> RobotRecord:
    values: dict[str, Any] = {
        "name": name,
        "secret_hash": "$2y$11$" + "x" * 53,
        "rules": (("team-a/**", ("pull", "push")),),
        "description": "CI",
        "created_at": datetime.now(UTC),
        "expires_at": None,
        "revoked_at": None,
    }
    values.update(changes)
    return RobotRecord(**values)


async def test_migration_0002_creates_exactly_the_schema_robots_table(registry: Registry) -> None:
    def diff(conn: Connection) -> list[Any]:
        found: list[Any] = compare_metadata(MigrationContext.configure(conn), schema)
        return found

    async with registry.meta.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert [d for d in differences if "robots" in repr(d)] == []


async def test_create_list_revoke(registry: Registry) -> None:
    robots = registry.robots
    created = await robots.create(
        _robot("jenkins", expires_at=datetime.now(UTC) + timedelta(days=1))
    )
    fetched = await robots.get("jenkins")
    assert fetched == created
    assert fetched.rules == (("team-a/**", ("pull", "push")),)
    assert fetched.expires_at is not None
    assert fetched.expires_at.tzinfo is not None
    with pytest.raises(RobotError, match="already exists"):
        await robots.create(_robot("jenkins"))
    revoked = await robots.revoke("jenkins")
    assert revoked.revoked_at is not None
    assert not revoked.active(datetime.now(UTC))
    with pytest.raises(RobotError, match="no active robot"):
        await robots.revoke("jenkins")
    # A revoked robot's name may be reused; the new robot starts fresh.
    await robots.create(_robot("jenkins", secret_hash="$2y$11$" + "y" * 53))
    again = await robots.get("jenkins")
    assert again is not None
    assert again.revoked_at is None
    assert again.secret_hash.endswith("y" * 53)
    await robots.create(_robot("gitlab"))
    assert [r.name for r in await robots.list()] == ["gitlab", "jenkins"]


async def test_robot_names_rules_and_expiry_are_checked(registry: Registry) -> None:
    for name in ("", "Jenkins", "robot$x", "-x", "a" * 65, "a/b"):
        with pytest.raises(RobotError):
            await registry.robots.create(_robot(name))
    with pytest.raises(RobotError, match="at least one rule"):
        await registry.robots.create(_robot("empty", rules=()))
    with pytest.raises(RobotError, match="expire"):
        await registry.robots.create(_robot("late", expires_at=datetime.now(UTC) - timedelta(1)))
    assert await registry.robots.get("Jenkins") is None
    assert await registry.robots.list() == []
