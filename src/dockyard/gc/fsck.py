"""fsck: re-hash stored blobs, and compare what the metadata records with what is stored.

Problems found:

- ``corrupt``: the bytes do not hash to their digest (or their size is wrong). The blob
  is quarantined: no repository serves it, mounts fall back to uploads, and a push of a
  manifest needing it asks for the blob again; uploading good bytes lifts the quarantine.
- ``missing``: recorded in metadata, absent from storage (quarantined too).
- ``unknown``: stored, but recorded nowhere (reported only; GC never deletes bytes it has
  no record of, since a push may be publishing them right now).

Each corrupt or missing blob is reported with the manifests and tags it breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.core import Registry

Progress = Callable[[str, int, int], None]


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Broken:
    """A manifest a bad blob breaks, and the tags pointing at it."""

    repository: str
    manifest: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing fsck found wrong."""

    kind: str  # corrupt | missing | unknown
    digest: str
    detail: str
    breaks: tuple[Broken, ...] = ()


@dataclass(slots=True)
class FsckReport:
    """What fsck checked and what it found."""

    checked: int = 0
    checked_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "checked_bytes": self.checked_bytes,
            "problems": [
                {
                    "kind": p.kind,
                    "digest": p.digest,
                    "detail": p.detail,
                    "breaks": [
                        {"repository": b.repository, "manifest": b.manifest, "tags": list(b.tags)}
                        for b in p.breaks
                    ],
                }
                for p in self.problems
            ],
        }


async def check_integrity(
    registry: Registry,
    *,
    sample: int | None = None,
    not_checked_for: float | None = None,
    progress: Progress = _quiet,
) -> FsckReport:
    """Verify blobs (all, a random ``sample``, or those not verified for
    ``not_checked_for`` seconds) and cross-check metadata and storage both ways."""
    life = registry.lifecycle
    report = FsckReport()
    blobs = await life.blobs_to_check(sample=sample, not_checked_for=not_checked_for)
    for i, (digest, size) in enumerate(blobs):
        problem = await life.verify_blob(digest, size)
        report.checked += 1
        report.checked_bytes += size
        if problem is not None:
            kind = "missing" if problem == "missing from storage" else "corrupt"
            uses = await life.users_of(digest)
            breaks = tuple(Broken(u.repository, u.manifest, u.tags) for u in uses)
            report.problems.append(Problem(kind, digest, problem, breaks))
        progress("verify", i + 1, len(blobs))
    recorded = await life.recorded_blobs()
    async for stored in life.stored_blobs():
        if str(stored) not in recorded:
            report.problems.append(
                Problem("unknown", str(stored), "stored, but recorded in no metadata")
            )
    return report
