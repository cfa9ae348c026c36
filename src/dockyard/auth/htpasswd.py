"""The user store: an htpasswd file of bcrypt hashes, the format ``htpasswd -B`` writes.

One ``user:hash`` per line. Only bcrypt hashes (``$2y$``, ``$2b$``, ``$2a$``) are
accepted: the older htpasswd formats (MD5 ``$apr1$``, ``{SHA}``, crypt) are too weak
to keep, so their lines are reported and skipped. Dockyard writes ``$2y$`` hashes, the
prefix Apache's tools write, so the file stays usable by Apache, nginx and Distribution.

Hashing and checking are deliberately slow (bcrypt): call them off the event loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

# Cost of new hashes: about 0.1 s per check here, where ``htpasswd -B`` uses 5.
BCRYPT_ROUNDS = 11
# bcrypt reads at most 72 bytes; Apache's htpasswd silently drops the rest, so do we.
_BCRYPT_MAX = 72
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
# Checked against when the user does not exist, so that a wrong user name costs as
# long as a wrong password and timing does not tell which user names exist.
_DUMMY = bcrypt.hashpw(b"dockyard", bcrypt.gensalt(BCRYPT_ROUNDS))


class HtpasswdError(ValueError):
    """A user name, password or htpasswd file that cannot be used."""


def validate_user(name: str) -> str:
    """``name`` if it can be a user name (letters, digits, ``._@-``; no ``$`` or ``:``)."""
    if not _USER.fullmatch(name):
        raise HtpasswdError(
            f"invalid user name {name[:80]!r}: up to 128 letters, digits and ._@-, "
            "starting with a letter or digit"
        )
    return name


def hash_password(password: str) -> str:
    """A new bcrypt hash of ``password`` in the ``$2y$`` form (slow: use a thread)."""
    if not password:
        raise HtpasswdError("the password is empty")
    if len(password.encode()) > _BCRYPT_MAX:
        raise HtpasswdError(f"the password is longer than bcrypt's {_BCRYPT_MAX} bytes")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    return "$2y$" + hashed[4:]


def check_password(password: str, hashed: str | None) -> bool:
    """Whether ``password`` matches the bcrypt ``hashed``; constant work when None."""
    candidate = password.encode()[:_BCRYPT_MAX]
    if hashed is None:
        bcrypt.checkpw(candidate, _DUMMY)
        return False
    try:
        return bcrypt.checkpw(candidate, hashed.encode())
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Htpasswd:
    """The parsed file: user name to bcrypt hash, plus the lines that were skipped."""

    users: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: bytes, source: Path | str = "htpasswd") -> Htpasswd:
        """Read an htpasswd file's bytes; HtpasswdError for a line that is not ``user:hash``."""
        users: dict[str, str] = {}
        skipped = []
        for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise HtpasswdError(f"{source}:{number}: not a user:hash line")
            if not _BCRYPT.fullmatch(hashed):
                # The user name is safe to report; the hash is never printed.
                skipped.append(f"{source}:{number}: user {user!r} has no bcrypt hash")
                continue
            users[user] = hashed
        return cls(users, tuple(skipped))

    def check(self, user: str, password: str) -> bool:
        """Whether ``user`` exists and ``password`` is theirs (slow: use a thread)."""
        return check_password(password, self.users.get(user))

    def with_password(self, user: str, hashed: str) -> Htpasswd:
        """A copy with ``user`` set to ``hashed`` (added at the end when new)."""
        return Htpasswd({**self.users, validate_user(user): hashed}, self.skipped)

    def without(self, user: str) -> Htpasswd:
        """A copy without ``user``."""
        return Htpasswd({u: h for u, h in self.users.items() if u != user}, self.skipped)

    def render(self) -> bytes:
        """The file's bytes, one ``user:hash`` per line."""
        return "".join(f"{u}:{h}\n" for u, h in self.users.items()).encode()


def read_htpasswd(path: Path) -> Htpasswd:
    """The file at ``path``; an empty user store when it does not exist yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Htpasswd()
    return Htpasswd.parse(data, path)


def write_htpasswd(path: Path, htpasswd: Htpasswd) -> None:
    """Replace the file atomically, readable by its owner only, keeping skipped lines out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(htpasswd.render())
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
