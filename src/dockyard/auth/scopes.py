"""Scopes of the Docker token spec (``repository:team-a/app:pull,push``) and challenges.

A scope names a resource and the actions wanted on it. The registry's 401 says which
scope a request needs (``WWW-Authenticate``); the client asks the token endpoint for it;
the token lists what was granted in its ``access`` claim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CATALOG = ("registry", "catalog")


@dataclass(frozen=True, slots=True)
class Scope:
    """``type:name:actions``; actions as given (``*`` included), in order."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """One scope string; None when it is not ``type[(class)]:name:actions``."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            return None
        # "repository(plugin):name:pull": the resource class does not change the rules.
        kind = kind.split("(", 1)[0]
        wanted = tuple(dict.fromkeys(a.strip() for a in actions.split(",") if a.strip()))
        return cls(kind, name, wanted)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def to_claim(self) -> dict[str, object]:
        """The entry of a token's ``access`` claim granting this scope."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Every scope in ``values``; each value may hold several, separated by spaces
    (the OAuth2 form) or be repeated (Docker's GET). Unparseable ones are dropped."""
    found = []
    for value in values:
        for text in value.split():
            scope = Scope.parse(text)
            if scope is not None:
                found.append(scope)
    return found


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic_challenge(realm: str) -> str:
    """``WWW-Authenticate`` asking for a user name and password."""
    return f'Basic realm={_quoted(realm)}, charset="UTF-8"'


def bearer_challenge(
    realm: str, service: str, scope: Scope | None = None, error: str | None = None
) -> str:
    """``WWW-Authenticate`` pointing at the token endpoint, with the scope to ask for."""
    params = [f"realm={_quoted(realm)}", f"service={_quoted(service)}"]
    if scope is not None:
        params.append(f"scope={_quoted(str(scope))}")
    if error is not None:
        params.append(f"error={_quoted(error)}")
    return "Bearer " + ",".join(params)
