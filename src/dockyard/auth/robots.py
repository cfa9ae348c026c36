"""Robot accounts as the access-control feature sees them: names, secrets, rules.

A robot logs in as ``robot$<name>`` with a generated secret. It may do what its own
rules grant (plus anonymous pulls) and nothing else: the policy file's rules never apply
to it, so a CI robot limited to ``team-a/**`` stays there whatever groups say. The
secret is shown once, when the robot is created; only its bcrypt hash is stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from dockyard.auth.htpasswd import hash_password
from dockyard.auth.patterns import (
    Grants,
    PatternError,
    RepositoryPattern,
    Rule,
    ordered,
    parse_actions,
    parse_rule,
)
from dockyard.core import RobotRecord, validate_robot_name

ROBOT_PREFIX = "robot$"


def robot_username(name: str) -> str:
    """The user name a robot logs in with."""
    return ROBOT_PREFIX + name


def robot_name(username: str) -> str | None:
    """The robot a user name stands for, or None when it is not a robot's."""
    return username[len(ROBOT_PREFIX) :] if username.startswith(ROBOT_PREFIX) else None


def new_robot(
    name: str, rules: Iterable[str], expires_at: datetime | None, description: str = ""
) -> tuple[RobotRecord, str]:
    """A robot record and its secret, from rules written ``PATTERN=ACTIONS``.

    Hashing is slow (bcrypt): call it off the event loop. Raises ValueError (RobotError,
    PatternError) for a bad name or rule.
    """
    validate_robot_name(name)
    parsed = [parse_rule(text) for text in rules]
    secret = secrets.token_urlsafe(32)
    record = RobotRecord(
        name=name,
        secret_hash=hash_password(secret),
        rules=tuple((r.patterns[0].text, tuple(ordered(r.actions))) for r in parsed),
        description=description,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        revoked_at=None,
    )
    return record, secret


def robot_grants(robot: RobotRecord) -> Grants:
    """What the robot's own rules grant."""
    rules = []
    for pattern, actions in robot.rules:
        try:
            rules.append(Rule((RepositoryPattern.parse(pattern),), parse_actions(actions)))
        except PatternError:
            continue  # written by an older version with other rules: grants nothing
    return Grants(tuple(rules))
