"""Robot accounts: rows of the ``robots`` table as typed values.

A robot is a credential for a machine (a CI job): its own rules, an optional expiry, and
a revocation time once revoked. Revoked robots stay listed, so an audit can tell which
credential once existed; a new robot may take a revoked robot's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from dockyard.metadata import schema as s
from dockyard.metadata.store import MetadataStore

# (repository pattern, actions) pairs, in the order they were given.
RobotRules = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class RobotRecord:
    """A robot account as stored: everything but its secret, which only exists hashed."""

    name: str
    secret_hash: str
    rules: RobotRules
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _record(row: Any) -> RobotRecord:
    created = _utc(row.created_at)
    assert created is not None
    return RobotRecord(
        name=row.name,
        secret_hash=row.secret_hash,
        rules=tuple((r["repositories"], tuple(r["actions"])) for r in row.rules),
        description=row.description,
        created_at=created,
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
    )


class RobotStore:
    """Reads and writes of robot accounts, on the metadata store's database."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def put(self, robot: RobotRecord) -> bool:
        """Store ``robot``, replacing a revoked robot of that name; False when an
        unrevoked robot already has the name (nothing is written then)."""
        values = {
            "secret_hash": robot.secret_hash,
            "rules": [{"repositories": p, "actions": list(a)} for p, a in robot.rules],
            "description": robot.description,
            "created_at": robot.created_at,
            "expires_at": robot.expires_at,
            "revoked_at": robot.revoked_at,
        }
        r = s.robots
        async with self._meta._write() as conn:
            existing = (
                await conn.execute(select(r.c.revoked_at).where(r.c.name == robot.name))
            ).one_or_none()
            if existing is None:
                await conn.execute(r.insert().values(name=robot.name, **values))
                return True
            if existing.revoked_at is None:
                return False
            await conn.execute(update(r).where(r.c.name == robot.name).values(**values))
            return True

    async def get(self, name: str) -> RobotRecord | None:
        """The robot called ``name``, revoked or not; None if there never was one."""
        async with self._meta._read() as conn:
            row = (
                await conn.execute(select(s.robots).where(s.robots.c.name == name))
            ).one_or_none()
        return None if row is None else _record(row)

    async def list(self) -> list[RobotRecord]:
        """Every robot, by name."""
        async with self._meta._read() as conn:
            rows = (await conn.execute(select(s.robots).order_by(s.robots.c.name))).all()
        return [_record(row) for row in rows]

    async def revoke(self, name: str, when: datetime) -> bool:
        """Mark the robot revoked at ``when``; False when there is no unrevoked robot ``name``."""
        r = s.robots
        async with self._meta._write() as conn:
            result = await conn.execute(
                update(r).where(r.c.name == name, r.c.revoked_at.is_(None)).values(revoked_at=when)
            )
            return bool(result.rowcount)
