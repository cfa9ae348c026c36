"""Robot accounts: the credentials CI jobs use, kept in the metadata database.

The core stores and lists them and enforces their naming; what a robot's rules mean
and how its secret is checked belong to the access-control feature.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dockyard.metadata import MetadataStore, RobotRecord, RobotStore

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class RobotError(ValueError):
    """A robot operation that cannot be done; the message says why."""


def validate_robot_name(name: str) -> str:
    """``name`` if it is a valid robot name (``[a-z0-9][a-z0-9._-]{0,63}``), else RobotError."""
    if not _NAME.fullmatch(name):
        raise RobotError(
            f"invalid robot name {name[:80]!r}: 1 to 64 characters of [a-z0-9._-], "
            "starting with a letter or digit"
        )
    return name


class Robots:
    """Create, find, list and revoke robot accounts."""

    def __init__(self, meta: MetadataStore) -> None:
        self._store = RobotStore(meta)

    async def create(self, robot: RobotRecord) -> RobotRecord:
        """Store a new robot; RobotError if the name is invalid, has no rules, or an
        unrevoked robot already uses it (a revoked robot's name may be reused)."""
        validate_robot_name(robot.name)
        if not robot.rules:
            raise RobotError(f"robot {robot.name!r} needs at least one rule")
        if robot.expires_at is not None and robot.expires_at <= datetime.now(UTC):
            raise RobotError(f"robot {robot.name!r} would expire before it is created")
        if not await self._store.put(robot):
            raise RobotError(f"robot {robot.name!r} already exists; revoke it first")
        return robot

    async def get(self, name: str) -> RobotRecord | None:
        """The robot called ``name`` (revoked and expired ones included), or None."""
        if not _NAME.fullmatch(name):
            return None
        return await self._store.get(name)

    async def list(self) -> list[RobotRecord]:
        """Every robot, revoked and expired ones included, by name."""
        return await self._store.list()

    async def revoke(self, name: str) -> RobotRecord:
        """Revoke the robot now: it can no longer log in. RobotError if there is none."""
        if not await self._store.revoke(validate_robot_name(name), datetime.now(UTC)):
            raise RobotError(f"no active robot named {name!r}")
        robot = await self._store.get(name)
        assert robot is not None
        return robot
