"""Who may do what: the access decision the core asks about, whoever makes it.

The core never knows how a caller was authenticated. Operations that reach beyond the
repository a request names (a mount from another repository, the catalog) ask an
:class:`Access` whether the caller may pull there. The access-control feature supplies
one per request; without it every answer is yes (``auth.mode = "none"``).
"""

from __future__ import annotations

from typing import Literal, Protocol

from dockyard.core.blobs import CanRead

Action = Literal["pull", "push", "delete"]
ACTIONS: tuple[Action, ...] = ("pull", "push", "delete")


class Access(Protocol):
    """The caller's permissions, asked one repository and action at a time."""

    async def can(self, repository: str, action: Action) -> bool:
        """Whether the caller may ``action`` in ``repository`` (a validated name).

        Must not raise for a repository it knows nothing about: the answer is then no.
        """
        ...


class AllowAll:
    """Every caller may do everything: access control is off."""

    async def can(self, repository: str, action: Action) -> bool:
        """Always yes."""
        return True


ALLOW_ALL: Access = AllowAll()


def can_pull(access: Access) -> CanRead:
    """``access`` as the read check that mounts and listings take."""

    async def _can_read(repository: str) -> bool:
        return await access.can(repository, "pull")

    return _can_read
