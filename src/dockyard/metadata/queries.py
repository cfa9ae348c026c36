"""The hot read queries, built once as constant statements with bound parameters.

Blob and manifest lookups answer most of a registry's requests (every node pulls every
layer). Building them once lets SQLAlchemy reuse its compiled form, and lets the SQLite
fast path (:mod:`dockyard.metadata.sqlite_reads`) run the very same SQL.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, select

from dockyard.metadata import schema as s

_m = s.manifests

# A blob fsck found corrupt is served by no repository (docs/lifecycle.md).
NOT_QUARANTINED = ~exists().where(
    s.blob_checks.c.digest == s.repository_blobs.c.digest,
    s.blob_checks.c.quarantined_at.is_not(None),
)

BLOB_SIZE = (
    select(s.blobs.c.size)
    .select_from(
        s.repositories.join(
            s.repository_blobs, s.repository_blobs.c.repository_id == s.repositories.c.id
        ).join(s.blobs, s.blobs.c.digest == s.repository_blobs.c.digest)
    )
    .where(
        s.repositories.c.name == bindparam("repository"),
        s.repository_blobs.c.digest == bindparam("digest"),
        NOT_QUARANTINED,
    )
)

MANIFEST_BY_DIGEST = (
    select(_m.c.digest, _m.c.media_type, _m.c.content)
    .join(s.repositories, s.repositories.c.id == _m.c.repository_id)
    .where(
        s.repositories.c.name == bindparam("repository"),
        _m.c.digest == bindparam("reference"),
    )
)

MANIFEST_BY_TAG = (
    select(_m.c.digest, _m.c.media_type, _m.c.content)
    .join(s.repositories, s.repositories.c.id == _m.c.repository_id)
    .join(
        s.tags,
        and_(s.tags.c.repository_id == _m.c.repository_id, s.tags.c.manifest_digest == _m.c.digest),
    )
    .where(
        s.repositories.c.name == bindparam("repository"),
        s.tags.c.name == bindparam("reference"),
    )
)
