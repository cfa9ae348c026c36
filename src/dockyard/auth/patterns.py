"""Repository patterns and actions, as the policy file, robots and ``anonymous_pull`` use them.

A pattern is matched against a validated repository name, component by component:

- ``*`` matches within one path component: ``prod/*`` is ``prod/api`` but not
  ``prod/api/v2``;
- ``**`` matches across components: ``team-a/**`` is every repository under ``team-a/``
  (not ``team-a`` itself), ``**`` alone is every repository.

Names are lowercase by the spec's grammar, so a pattern with capitals could never match:
it is refused rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dockyard.core import ACTIONS, Action

_PATTERN_CHARS = re.compile(r"[a-z0-9._\-/*]+")
_ACTION_NAMES: dict[str, Action] = {a: a for a in ACTIONS}


class PatternError(ValueError):
    """A repository pattern, action or rule that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class RepositoryPattern:
    """A compiled repository pattern (see the module docstring)."""

    text: str
    _regex: re.Pattern[str] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> RepositoryPattern:
        """Compile ``text``; PatternError naming the problem when it is not a pattern."""
        if not text:
            raise PatternError("a repository pattern cannot be empty")
        if text != text.lower():
            raise PatternError(
                f"repository pattern {text!r} has capitals; repository names are lowercase"
            )
        if not _PATTERN_CHARS.fullmatch(text) or "***" in text:
            raise PatternError(
                f"repository pattern {text!r} may hold only [a-z0-9._-/], '*' and '**'"
            )
        parts = []
        for piece in re.split(r"(\*\*|\*)", text):
            if piece == "**":
                parts.append(".*")
            elif piece == "*":
                parts.append("[^/]*")
            else:
                parts.append(re.escape(piece))
        return cls(text, re.compile("".join(parts)))

    def matches(self, repository: str) -> bool:
        """Whether the (validated) repository name falls under this pattern."""
        return self._regex.fullmatch(repository) is not None


def parse_actions(names: Iterable[str]) -> frozenset[Action]:
    """``pull``, ``push``, ``delete`` or ``*`` (all three); PatternError for anything else."""
    actions: set[Action] = set()
    for name in names:
        name = name.strip()
        if name == "*":
            actions.update(ACTIONS)
        elif name in _ACTION_NAMES:
            actions.add(_ACTION_NAMES[name])
        else:
            raise PatternError(f"unknown action {name!r}: use pull, push, delete or *")
    if not actions:
        raise PatternError("a rule needs at least one action")
    return frozenset(actions)


def ordered(actions: Iterable[str]) -> list[str]:
    """``actions`` in the canonical order pull, push, delete."""
    wanted = set(actions)
    return [a for a in ACTIONS if a in wanted]


@dataclass(frozen=True, slots=True)
class Rule:
    """Actions granted on every repository one of ``patterns`` matches."""

    patterns: tuple[RepositoryPattern, ...]
    actions: frozenset[Action]

    def applies_to(self, repository: str) -> bool:
        return any(p.matches(repository) for p in self.patterns)


def parse_rule(text: str) -> Rule:
    """``PATTERN=ACTIONS`` as the command line writes a rule: ``team-a/**=pull,push``."""
    pattern, sep, actions = text.rpartition("=")
    if not sep:
        raise PatternError(f"rule {text!r} is not PATTERN=ACTIONS, e.g. 'team-a/**=pull,push'")
    return Rule((RepositoryPattern.parse(pattern),), parse_actions(actions.split(",")))


@dataclass(frozen=True, slots=True)
class Grants:
    """Everything one caller may do: the union of its rules."""

    rules: tuple[Rule, ...] = ()

    def actions(self, repository: str) -> frozenset[Action]:
        """The actions granted on ``repository`` (a validated name)."""
        granted: set[Action] = set()
        for rule in self.rules:
            if rule.applies_to(repository):
                granted |= rule.actions
        return frozenset(granted)

    def __or__(self, other: Grants) -> Grants:
        return Grants(self.rules + other.rules)


EVERYTHING = Grants((Rule((RepositoryPattern.parse("**"),), frozenset(ACTIONS)),))


def anonymous_grants(patterns: Iterable[str]) -> Grants:
    """Pull on every pattern of ``[auth] anonymous_pull``."""
    parsed = tuple(RepositoryPattern.parse(p) for p in patterns)
    return Grants((Rule(parsed, frozenset({"pull"})),) if parsed else ())
