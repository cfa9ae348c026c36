"""Garbage collection: mark, drop stale blob links, sweep unused blobs, expire uploads.

Online: every deletion re-checks its condition in the transaction that deletes (see
:mod:`dockyard.core.lifecycle`), so pushes, mounts and other collectors may run at the
same time. The grace period protects blobs uploaded for a manifest not pushed yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.core import Registry
from dockyard.gc.mark import mark
from dockyard.gc.uploads import ExpiredUpload, expire_uploads, remove_orphaned_staging

log = logging.getLogger("dockyard.gc")

# ``(phase, done, total)``: how far a run is, for a progress bar.
Progress = Callable[[str, int, int], None]


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


@dataclass(slots=True)
class GcReport:
    """What a GC run deleted (or, in a dry run, would delete)."""

    dry_run: bool
    repositories: int = 0
    reachable_manifests: int = 0
    untagged_manifests: int = 0
    dropped_links: list[tuple[str, str]] = field(default_factory=list)
    deleted_blobs: list[tuple[str, int]] = field(default_factory=list)
    expired_uploads: list[ExpiredUpload] = field(default_factory=list)
    # Upload ids whose staged bytes no session owned (a crash left them, say).
    orphaned_staging: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """Blob bytes removed from storage (staged upload bytes included)."""
        return sum(size for _, size in self.deleted_blobs) + sum(
            u.size for u in self.expired_uploads
        )

    def to_json(self) -> dict[str, Any]:
        """The report as ``dockyard gc --json`` prints it."""
        return {
            "dry_run": self.dry_run,
            "repositories": self.repositories,
            "reachable_manifests": self.reachable_manifests,
            "untagged_manifests": self.untagged_manifests,
            "dropped_links": [{"repository": r, "digest": d} for r, d in self.dropped_links],
            "deleted_blobs": [{"digest": d, "size": s} for d, s in self.deleted_blobs],
            "expired_uploads": [
                {"id": u.id, "repository": u.repository, "size": u.size}
                for u in self.expired_uploads
            ],
            "orphaned_staging": self.orphaned_staging,
            "bytes_freed": self.bytes_freed,
        }


async def collect_garbage(
    registry: Registry,
    *,
    grace: float,
    upload_expiry: float,
    dry_run: bool = False,
    progress: Progress = _quiet,
) -> GcReport:
    """One GC run over the whole registry (see the module docstring)."""
    life = registry.lifecycle
    report = GcReport(dry_run)
    report.expired_uploads = await expire_uploads(registry, upload_expiry, dry_run=dry_run)
    report.orphaned_staging = await remove_orphaned_staging(
        registry, upload_expiry, dry_run=dry_run
    )
    repositories = await life.repositories()
    report.repositories = len(repositories)
    for i, name in enumerate(repositories):
        graph = await life.graph(name)
        if graph is not None:
            marked = mark(graph)
            report.reachable_manifests += len(marked.reachable)
            report.untagged_manifests += len(marked.untagged)
        progress("mark", i + 1, len(repositories))
    if dry_run:
        links = await life.stale_links(grace)
    else:
        links = await life.drop_stale_links(grace)
    report.dropped_links = [(link.repository, link.digest) for link in links]
    progress("links", len(links), len(links))
    candidates = await life.unused_blobs(grace)
    if not dry_run:
        swept = []
        for start in range(0, len(candidates), 100):
            swept += await life.sweep_blobs(candidates[start : start + 100], grace)
            progress("sweep", min(start + 100, len(candidates)), len(candidates))
        candidates = swept
    progress("sweep", len(candidates), len(candidates))
    report.deleted_blobs = [(blob.digest, blob.size) for blob in candidates]
    log.info(
        "gc%s: %d link(s) dropped, %d blob(s) deleted, %d upload(s) expired, "
        "%d orphaned staging area(s) removed, %d bytes freed",
        " (dry run)" if dry_run else "",
        len(report.dropped_links),
        len(report.deleted_blobs),
        len(report.expired_uploads),
        len(report.orphaned_staging),
        report.bytes_freed,
    )
    return report
