"""Configuration files the running server re-reads when they change (htpasswd, policy).

Operators add users and edit rules without a restart: each file is checked at most
every few seconds, off the event loop, and re-parsed only when its size, inode or
modification time moved. A file that no longer parses keeps its last good contents
(logged as an error), so a half-saved edit never opens or closes the registry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("dockyard.auth")

T = TypeVar("T")
_CHECK_EVERY = 2.0


class WatchedFile(Generic[T]):
    """The parsed contents of one file, refreshed when the file changes."""

    def __init__(
        self,
        path: Path,
        parse: Callable[[bytes, Path], T],
        *,
        missing: Callable[[], T] | None = None,
        check_every: float = _CHECK_EVERY,
    ) -> None:
        """``parse`` turns the bytes into a value or raises ValueError; ``missing`` is the
        value of an absent file (absent and no ``missing``: an error)."""
        self.path = path
        self._parse = parse
        self._missing = missing
        self._check_every = check_every
        self._stamp: tuple[int, int, int] | None = None
        self._value: T | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    def _read(self) -> tuple[tuple[int, int, int] | None, T | None]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._missing is None:
                raise ValueError(f"{self.path} does not exist") from None
            if self._stamp is None and self._value is not None:
                return None, None  # still absent: nothing changed
            return None, self._missing()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return stamp, None
        return stamp, self._parse(self.path.read_bytes(), self.path)

    async def load(self) -> T:
        """Read the file now; raises ValueError (with the path) when it cannot be used."""
        stamp, value = await asyncio.to_thread(self._read)
        assert value is not None
        self._stamp, self._value = stamp, value
        self._checked = time.monotonic()
        return value

    async def get(self) -> T:
        """The current contents, re-read first when the file changed since the last look."""
        if self._value is None:
            return await self.load()
        if time.monotonic() - self._checked < self._check_every:
            return self._value
        async with self._lock:
            if time.monotonic() - self._checked >= self._check_every:
                self._checked = time.monotonic()
                try:
                    stamp, value = await asyncio.to_thread(self._read)
                except (OSError, ValueError) as e:
                    log.error("keeping the previous %s: %s", self.path, e)
                else:
                    if value is not None:
                        log.info("reloaded %s", self.path)
                        self._stamp, self._value = stamp, value
        return self._value
