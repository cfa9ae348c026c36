"""Who is calling: user name and password in, a :class:`Principal` with its grants out.

Users come from the htpasswd file, robots from the metadata database. A successful
check is remembered for a few seconds (keyed by a salted hash of the credentials,
never the password itself), so a client sending Basic credentials with every request
does not pay bcrypt's cost on each; a password change or revocation therefore takes
effect within that time. Failed logins go through the :class:`LoginThrottle`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from dockyard.auth.files import WatchedFile
from dockyard.auth.htpasswd import Htpasswd, check_password
from dockyard.auth.patterns import EVERYTHING, Grants
from dockyard.auth.policy import Policy
from dockyard.auth.robots import robot_grants, robot_name
from dockyard.auth.throttle import LoginThrottle
from dockyard.core import Robots

_REMEMBER = 10.0
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: its name (``""`` when anonymous), what it may do, until when."""

    name: str
    grants: Grants
    expires_at: datetime | None = None

    @property
    def authenticated(self) -> bool:
        return bool(self.name)


class LoginFailed(Exception):
    """Wrong user name or password (which one is not said)."""


class LoginLocked(Exception):
    """Too many failed logins of this user from this client; retry after ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"locked for {retry_after:.0f}s")
        self.retry_after = retry_after


class Accounts:
    """Checks credentials and tells what each principal may do."""

    def __init__(
        self,
        htpasswd: WatchedFile[Htpasswd],
        policy: WatchedFile[Policy] | None,
        robots: Robots,
        anonymous: Grants,
        throttle: LoginThrottle,
    ) -> None:
        self._htpasswd = htpasswd
        self._policy = policy
        self._robots = robots
        self.anonymous = Principal("", anonymous)
        self.throttle = throttle
        self._salt = os.urandom(32)
        self._remembered: dict[bytes, tuple[float, Principal]] = {}

    async def login(self, user: str, password: str, client: str) -> Principal:
        """The principal these credentials prove; LoginFailed or LoginLocked otherwise."""
        left = self.throttle.locked(user, client)
        if left is not None:
            raise LoginLocked(left)
        key = hmac.new(self._salt, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        remembered = self._remembered.get(key)
        if remembered is not None and remembered[0] > time.monotonic():
            self.throttle.succeeded(user, client)
            return remembered[1]
        principal = await self._check(user, password)
        if principal is None:
            self.throttle.failed(user, client)
            raise LoginFailed(user)
        self.throttle.succeeded(user, client)
        if len(self._remembered) >= _MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[key] = (time.monotonic() + _REMEMBER, principal)
        return principal

    async def _check(self, user: str, password: str) -> Principal | None:
        robot = robot_name(user)
        if robot is not None:
            record = await self._robots.get(robot)
            usable = record is not None and record.active(datetime.now(UTC))
            hashed = record.secret_hash if record is not None and usable else None
            if not await asyncio.to_thread(check_password, password, hashed):
                return None
            assert record is not None
            return Principal(user, robot_grants(record) | self.anonymous.grants, record.expires_at)
        users = await self._htpasswd.get()
        if not await asyncio.to_thread(users.check, user, password):
            return None
        return Principal(user, await self.user_grants(user))

    async def user_grants(self, user: str) -> Grants:
        """What a user of the htpasswd file may do: the policy's rules, or everything
        when there is no policy file; anonymous pulls in either case."""
        if self._policy is None:
            return EVERYTHING | self.anonymous.grants
        return (await self._policy.get()).grants(user) | self.anonymous.grants

    async def principal(self, subject: str) -> Principal | None:
        """The principal a token subject names, without a password: for the catalog of
        a token holder and for ``dockyard token``. None when no such account is active."""
        if not subject:
            return self.anonymous
        robot = robot_name(subject)
        if robot is not None:
            record = await self._robots.get(robot)
            if record is None or not record.active(datetime.now(UTC)):
                return None
            grants = robot_grants(record) | self.anonymous.grants
            return Principal(subject, grants, record.expires_at)
        if subject not in (await self._htpasswd.get()).users:
            return None
        return Principal(subject, await self.user_grants(subject))
