"""The policy file (TOML): groups of users, and rules granting actions on repositories.

::

    [groups]
    developers = ["alice", "bob"]
    workers = ["node-1", "node-2"]

    [[rules]]                       # developers push and pull their team's images
    repositories = ["team-a/**"]
    actions = ["pull", "push"]
    groups = ["developers"]

    [[rules]]                       # worker nodes only pull, and only production
    repositories = "prod/**"
    actions = ["pull"]
    groups = ["workers"]

    [[rules]]                       # one admin may delete anywhere
    repositories = "**"
    actions = ["*"]
    users = ["carol"]

A user may do the union of what the rules naming them (directly, through a group, or
as ``users = ["*"]``, every user) grant. Nothing else: with a policy file, a user no
rule names may only pull what ``[auth] anonymous_pull`` opens to everyone. Rules apply
to users of the htpasswd file; robot accounts carry their own rules.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from dockyard.auth.patterns import Grants, PatternError, RepositoryPattern, Rule, parse_actions


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


_Names = Annotated[list[str], BeforeValidator(_as_list)]


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repositories: Annotated[_Names, Field(min_length=1)]
    actions: Annotated[_Names, Field(min_length=1)]
    users: _Names = []
    groups: _Names = []


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, list[str]] = {}
    rules: list[_RuleModel] = []


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


class Policy:
    """Groups and rules, ready to answer what a user may do."""

    def __init__(self, groups: dict[str, frozenset[str]], rules: list[tuple[Rule, _RuleModel]]):
        self._groups = groups
        self._rules = rules
        self._cache: dict[str, Grants] = {}

    @classmethod
    def parse(cls, data: bytes, source: Path | str = "policy") -> Policy:
        """Read a policy file's bytes; PolicyError naming the bad key otherwise."""
        try:
            doc = tomllib.loads(data.decode())
            model = _PolicyModel.model_validate(doc)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise PolicyError(f"{source} is not valid TOML: {e}") from None
        except ValidationError as e:
            problems = [
                f"{'.'.join(str(p) for p in err['loc'])}: "
                + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
                for err in e.errors()
            ]
            raise PolicyError(f"{source}: " + "; ".join(problems)) from None
        rules = []
        for i, rule in enumerate(model.rules):
            where = f"{source}: rules.{i}"
            try:
                patterns = tuple(RepositoryPattern.parse(p) for p in rule.repositories)
                actions = parse_actions(rule.actions)
            except PatternError as e:
                raise PolicyError(f"{where}: {e}") from None
            unknown = [g for g in rule.groups if g not in model.groups]
            if unknown:
                raise PolicyError(f"{where}: unknown group(s) {', '.join(unknown)}")
            if not rule.users and not rule.groups:
                raise PolicyError(f"{where}: names no users or groups, so grants nothing")
            rules.append((Rule(patterns, actions), rule))
        groups = {name: frozenset(members) for name, members in model.groups.items()}
        return cls(groups, rules)

    def grants(self, user: str) -> Grants:
        """What the rules grant ``user`` (an htpasswd user name)."""
        cached = self._cache.get(user)
        if cached is None:
            mine = tuple(
                rule
                for rule, model in self._rules
                if "*" in model.users
                or user in model.users
                or any(user in self._groups[g] for g in model.groups)
            )
            cached = self._cache[user] = Grants(mine)
        return cached
