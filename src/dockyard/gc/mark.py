"""Mark: which manifests of a repository are reachable, and which are merely kept.

Reachable: every tagged manifest, the children of reachable indexes, and the referrers
(signatures, SBOMs) whose subject is reachable, to a fixed point. The rest are untagged:
GC keeps them (and their blobs); only a retention rule deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.lifecycle import RepositoryGraph


@dataclass(frozen=True, slots=True)
class Marked:
    """The mark of one repository: reachable and untagged manifest digests."""

    repository: str
    reachable: frozenset[str]
    untagged: frozenset[str]


def mark(graph: RepositoryGraph) -> Marked:
    """Mark ``graph`` (see the module docstring)."""
    manifests = graph.manifests
    referrers: dict[str, list[str]] = {}
    for digest, manifest in manifests.items():
        if manifest.subject is not None:
            referrers.setdefault(manifest.subject, []).append(digest)
    reachable: set[str] = set()
    pending = [tag.digest for tag in graph.tags if tag.digest in manifests]
    while pending:
        digest = pending.pop()
        if digest in reachable:
            continue
        reachable.add(digest)
        pending += [c for c in manifests[digest].children if c in manifests]
        pending += referrers.get(digest, [])
    return Marked(graph.name, frozenset(reachable), frozenset(manifests) - reachable)
