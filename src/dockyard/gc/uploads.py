"""Upload expiry: sessions idle past ``[gc] upload_expiry`` go, with their staged bytes,
and so do staged bytes that no session owns, once as old."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core import Registry


@dataclass(frozen=True, slots=True)
class ExpiredUpload:
    """An upload session that expired (or would, in a dry run)."""

    id: str
    repository: str
    size: int


async def expire_uploads(
    registry: Registry, expiry: float, *, dry_run: bool = False
) -> list[ExpiredUpload]:
    """Close every session idle for more than ``expiry`` seconds; those closed.

    A session that receives a chunk meanwhile is left alone (re-checked per session).
    """
    expired = []
    for upload in await registry.lifecycle.stale_uploads(expiry):
        if dry_run or await registry.lifecycle.expire_upload(upload, expiry):
            expired.append(ExpiredUpload(upload.id, upload.repository, upload.size))
    return expired


async def remove_orphaned_staging(
    registry: Registry, expiry: float, *, dry_run: bool = False
) -> list[str]:
    """Remove what is staged, untouched for more than ``expiry`` seconds, under upload
    ids no session owns; those ids."""
    orphans = await registry.lifecycle.orphaned_staging(expiry)
    if not dry_run:
        for upload_id in orphans:
            await registry.lifecycle.remove_staging(upload_id)
    return orphans
