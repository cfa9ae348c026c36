"""Retention: which tags and untagged manifests each ``[[retention]]`` rule removes.

Each repository follows the first rule whose ``repositories`` pattern matches it. Within
a rule, keeping wins over deleting: a tag matching ``keep_tags``, or among the
``keep_last`` most recently moved tags, is never deleted. The other tags go when
``keep_last`` is set (only the newest N are kept) or when they match ``delete_tags``
and have not moved for ``older_than``. Then untagged manifests nothing reachable needs
(see :mod:`dockyard.gc.mark`) go once older than ``delete_untagged_older_than``.

Every deletion re-checks its target in its own transaction (a tag pushed meanwhile is
not deleted) and every tag deletion is recorded in the tag's history as
``retention:<rule>``. Blobs are left to GC.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dockyard.config import RetentionRule
from dockyard.core import Registry
from dockyard.core.lifecycle import RepositoryGraph
from dockyard.gc.mark import mark

log = logging.getLogger("dockyard.gc")


def rule_name(rule: RetentionRule, index: int) -> str:
    """The rule's name in tag history: its ``name``, or ``rule-<n>`` (1-based)."""
    return rule.name or f"rule-{index + 1}"


def repository_pattern(pattern: str) -> re.Pattern[str]:
    """``team-a/**`` style: ``**`` spans slashes, ``*`` and ``?`` stay in one segment."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True, slots=True)
class Deletion:
    """One thing retention deletes: a tag (``tag`` set) or an untagged manifest."""

    repository: str
    digest: str
    tag: str | None
    rule: str
    why: str


@dataclass(slots=True)
class RetentionReport:
    """What a retention run deleted (or would delete, in a dry run)."""

    dry_run: bool
    deletions: list[Deletion] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deletions": [
                {"repository": d.repository, "digest": d.digest, "tag": d.tag,
                 "rule": d.rule, "why": d.why}
                for d in self.deletions
            ],
        }  # fmt: skip


def match_rule(rules: Sequence[RetentionRule], repository: str) -> tuple[int, RetentionRule] | None:
    """The first rule covering ``repository``, with its index."""
    for i, rule in enumerate(rules):
        if repository_pattern(rule.repositories).fullmatch(repository):
            return i, rule
    return None


def plan_tags(
    graph: RepositoryGraph, rule: RetentionRule, name: str, now: datetime
) -> list[Deletion]:
    """The tags ``rule`` deletes from ``graph``."""
    newest_first = sorted(graph.tags, key=lambda t: (t.updated_at, t.name), reverse=True)
    deletions = []
    for rank, tag in enumerate(newest_first):
        if any(fnmatch.fnmatchcase(tag.name, p) for p in rule.keep_tags):
            continue
        if rank < rule.keep_last:
            continue
        why = None
        if rule.keep_last:
            why = f"not among the {rule.keep_last} newest tags"
        for doomed in rule.delete_tags:
            if fnmatch.fnmatchcase(tag.name, doomed.pattern) and now - tag.updated_at > timedelta(
                seconds=doomed.older_than
            ):
                why = f"matches {doomed.pattern!r}, unchanged for over {_days(doomed.older_than)}"
                break
        if why:
            deletions.append(Deletion(graph.name, tag.digest, tag.name, name, why))
    return deletions


def plan_untagged(
    graph: RepositoryGraph, rule: RetentionRule, name: str, now: datetime
) -> list[Deletion]:
    """The untagged manifests ``rule`` deletes from ``graph``: indexes before their
    children, referrers before their subjects."""
    if rule.delete_untagged_older_than is None:
        return []
    limit = timedelta(seconds=rule.delete_untagged_older_than)
    old = [
        graph.manifests[d]
        for d in mark(graph).untagged
        if now - graph.manifests[d].created_at > limit
    ]
    old.sort(key=lambda m: (not m.children, m.subject is None, m.digest))
    why = f"untagged for over {_days(limit.total_seconds())}"
    return [Deletion(graph.name, m.digest, None, name, why) for m in old]


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds:g}s"


async def apply_retention(
    registry: Registry, rules: Sequence[RetentionRule], *, dry_run: bool = False
) -> RetentionReport:
    """Apply ``rules`` to every repository (see the module docstring)."""
    life = registry.lifecycle
    report = RetentionReport(dry_run)
    now = datetime.now(UTC)
    for repository in await life.repositories():
        found = match_rule(rules, repository)
        graph = await life.graph(repository)
        if found is None or graph is None:
            continue
        index, rule = found
        name = rule_name(rule, index)
        tags = plan_tags(graph, rule, name, now)
        for deletion in tags:
            assert deletion.tag is not None
            if dry_run or await life.delete_tag(repository, deletion.tag, deletion.digest, name):
                report.deletions.append(deletion)
        if dry_run:
            gone = {d.tag for d in tags}
            graph.tags = [t for t in graph.tags if t.name not in gone]
        else:
            graph = await life.graph(repository)
            if graph is None:
                continue
        for deletion in plan_untagged(graph, rule, name, now):
            if dry_run or await life.delete_untagged(repository, deletion.digest):
                report.deletions.append(deletion)
    for d in report.deletions:
        log.info(
            "retention%s: %s %s@%s (%s: %s)",
            " (dry run)" if dry_run else "",
            "tag" if d.tag else "manifest",
            d.repository if d.tag is None else f"{d.repository}:{d.tag}",
            d.digest,
            d.rule,
            d.why,
        )
    return report
