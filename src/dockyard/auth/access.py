"""The caller's :class:`~dockyard.core.Access`, from its grants or from its token, and the
trimming of requested scopes to what a principal may have."""

from __future__ import annotations

from dockyard.auth.accounts import Principal
from dockyard.auth.patterns import Grants, ordered
from dockyard.auth.scopes import CATALOG, Scope
from dockyard.auth.tokens import VerifiedToken
from dockyard.core import ACTIONS, Action
from dockyard.oci import InvalidName, validate_name


class GrantsAccess:
    """Access by rules: a logged-in user or robot (Basic), or an anonymous caller."""

    def __init__(self, grants: Grants) -> None:
        self._grants = grants

    async def can(self, repository: str, action: Action) -> bool:
        return action in self._grants.actions(repository)


class TokenAccess:
    """Access by a bearer token: exactly its ``access`` claim."""

    def __init__(self, token: VerifiedToken) -> None:
        self._token = token

    async def can(self, repository: str, action: Action) -> bool:
        return self._token.allows("repository", repository, action)


def trim(principal: Principal, requested: list[Scope], *, catalog_open: bool) -> list[Scope]:
    """The part of ``requested`` that ``principal`` may have; the rest is dropped, not
    refused (the token spec's behaviour: the registry then denies what is missing).

    Repository names are validated first, so ``a/../b`` or ``A`` never reach a pattern.
    The catalog goes to any logged-in principal (it lists only what they may pull), and
    to anonymous callers when ``catalog_open`` (some repositories are anonymous).
    """
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in requested:
        if scope.type == "repository":
            try:
                name = validate_name(scope.name)
            except InvalidName:
                continue
            wanted = ACTIONS if "*" in scope.actions else scope.actions
            allowed = principal.grants.actions(name)
            got: set[str] = {a for a in wanted if a in allowed}
        elif (scope.type, scope.name) == CATALOG:
            got = {"*"} if principal.authenticated or catalog_open else set()
        else:
            continue
        if got:
            merged.setdefault((scope.type, scope.name), set()).update(got)
    return [
        Scope(kind, name, ("*",) if "*" in actions else tuple(ordered(actions)))
        for (kind, name), actions in merged.items()
    ]
