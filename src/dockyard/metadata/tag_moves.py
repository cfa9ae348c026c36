"""Moving and removing tags inside a write transaction, each move recorded in its history.

These are functions of the transaction's connection, called by the store's write
transactions (a manifest PUT, a tag or manifest DELETE) and by retention. On
PostgreSQL a move locks the tag's row first (SQLite writers are serialised already):
a concurrent move waits for this one, then reads the digest it really replaces, so
the history stays a chain with no lost update.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from dockyard.metadata import queries as q
from dockyard.metadata.records import TagChange


def set_tag(
    conn: Connection,
    upserts: q.Upserts,
    repo_id: int,
    repository: str,
    tag: str,
    digest: str,
    reason: str,
) -> TagChange | None:
    """Point ``tag`` at ``digest``, creating it if need be; the move made, or None when
    the tag already pointed there."""
    now = datetime.now(UTC)
    key = {"repository_id": repo_id, "name": tag}
    while True:
        old = conn.execute(q.TAG_FOR_UPDATE, key).scalar()
        if old == digest:
            return None
        if old is not None:
            conn.execute(
                q.MOVE_TAG,
                {"repo_id": repo_id, "tag": tag, "manifest_digest": digest, "updated_at": now},
            )
            break
        created = conn.execute(upserts.tag, {**key, "manifest_digest": digest, "updated_at": now})
        if created.first() is not None:
            break
        # Another transaction created the tag after our read: lock it and move it.
    return _record(conn, repo_id, repository, tag, old, digest, reason, now)


def remove_tag(
    conn: Connection, repo_id: int, repository: str, tag: str, reason: str
) -> TagChange | None:
    """Delete ``tag``; the removal made, or None when there was no such tag."""
    old = conn.execute(q.REMOVE_TAG, {"repository_id": repo_id, "name": tag}).scalar()
    if old is None:
        return None
    return _record(conn, repo_id, repository, tag, old, None, reason, datetime.now(UTC))


def _record(
    conn: Connection,
    repo_id: int,
    repository: str,
    tag: str,
    old: str | None,
    new: str | None,
    reason: str,
    when: datetime,
) -> TagChange:
    conn.execute(
        q.INSERT_TAG_HISTORY,
        {
            "repository_id": repo_id,
            "tag": tag,
            "old_digest": old,
            "new_digest": new,
            "changed_at": when,
            "reason": reason,
        },
    )
    return TagChange(repository, tag, old, new, when, reason)
