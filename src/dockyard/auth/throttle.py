"""Failed-login lockout, per user name and client address.

After ``limit`` failed logins of one user from one address, that pair is locked out
for ``lockout`` seconds: even the right password is refused (TOOMANYREQUESTS with
``Retry-After``), so guessing cannot go on. The same user from another address, and
other users from the same address, are not affected, so an attacker cannot lock
everyone out. A success clears the count. State is per process (one per worker); the
limit then applies per worker, which still bounds guessing to ``workers * limit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Beyond this many tracked pairs, the oldest entries go first: memory stays bounded
# whatever an attacker sends.
_MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Entry:
    failures: int
    first_failure: float
    locked_until: float


class LoginThrottle:
    """Counts failed logins per (user, client) and locks the pair out past the limit."""

    def __init__(
        self, limit: int, lockout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.lockout = lockout
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def locked(self, user: str, client: str) -> float | None:
        """Seconds left of the pair's lockout, or None when it may try."""
        entry = self._entries.get((user, client))
        if entry is None:
            return None
        left = entry.locked_until - self._clock()
        return left if left > 0 else None

    def failed(self, user: str, client: str) -> None:
        """Count one failed login; lock the pair out on reaching the limit."""
        now = self._clock()
        key = (user, client)
        entry = self._entries.get(key)
        if entry is None or now - entry.first_failure > self.lockout:
            # Failures older than one lockout period are forgotten.
            entry = _Entry(0, now, 0.0)
            self._entries.pop(key, None)
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = entry
        entry.failures += 1
        if entry.failures >= self.limit:
            entry.locked_until = now + self.lockout
            entry.failures = 0
            entry.first_failure = now

    def succeeded(self, user: str, client: str) -> None:
        """Forget the pair's failures."""
        self._entries.pop((user, client), None)
