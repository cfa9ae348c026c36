"""The hot queries, built once as constant statements with bound parameters.

Blob and manifest lookups answer most of a registry's requests (every node pulls every
layer). Building them once lets SQLAlchemy reuse its compiled form, and lets the SQLite
fast path (:mod:`dockyard.metadata.sqlite_reads`) run the very same SQL. A push's write
transactions run many short statements; built once, with parameters, they skip
SQLAlchemy's statement building and cache-key work on every execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

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

# -- the statements of a push's write transactions (metadata/store.py) -----------------

_r, _rb, _u, _t, _h = s.repositories, s.repository_blobs, s.uploads, s.tags, s.tag_history


def _p(column: Any) -> BindParameter[Any]:
    """A parameter named and typed after ``column``."""
    return bindparam(column.name, type_=column.type)


REPOSITORY_ID = select(_r.c.id).where(_r.c.name == _p(_r.c.name))

LINKED_BLOBS = (
    select(_rb.c.digest)
    .where(
        _rb.c.repository_id == _p(_rb.c.repository_id),
        _rb.c.digest.in_(bindparam("digests", expanding=True)),
        NOT_QUARANTINED,
    )
    # FOR SHARE (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises anyway): GC's sweep
    # cannot drop these links until the manifest that needs them, and its refs, commit.
    .with_for_update(read=True, of=_rb)
)

STORED_MANIFESTS = (
    select(_m.c.digest)
    .where(
        _m.c.repository_id == _p(_m.c.repository_id),
        _m.c.digest.in_(bindparam("digests", expanding=True)),
    )
    # FOR SHARE: retention cannot delete these children until the index commits.
    .with_for_update(read=True)
)

_THIS_MANIFEST = (_m.c.repository_id == _p(_m.c.repository_id), _m.c.digest == _p(_m.c.digest))

# A manifest a PUT found stored already, held until the PUT's tags commit (store.py).
HOLD_MANIFEST = select(_m.c.id).where(*_THIS_MANIFEST).with_for_update(read=True)

# A manifest about to be deleted: waits for the PUTs that hold it.
MANIFEST_FOR_UPDATE = select(_m.c.id).where(*_THIS_MANIFEST).with_for_update()

INSERT_MANIFEST_REF = s.manifest_refs.insert()

TAG_FOR_UPDATE = (
    select(_t.c.manifest_digest)
    .where(_t.c.repository_id == _p(_t.c.repository_id), _t.c.name == _p(_t.c.name))
    .with_for_update()
)

MOVE_TAG = (
    update(_t)
    .where(_t.c.repository_id == bindparam("repo_id"), _t.c.name == bindparam("tag"))
    .values(manifest_digest=_p(_t.c.manifest_digest), updated_at=_p(_t.c.updated_at))
)

REMOVE_TAG = (
    delete(_t)
    .where(_t.c.repository_id == _p(_t.c.repository_id), _t.c.name == _p(_t.c.name))
    .returning(_t.c.manifest_digest)
)

INSERT_TAG_HISTORY = _h.insert()

INSERT_UPLOAD = _u.insert()

ADVANCE_UPLOAD = (
    update(_u)
    .where(_u.c.id == bindparam("upload_id"), _u.c.size == bindparam("expected"))
    .values(size=_p(_u.c.size), updated_at=_p(_u.c.updated_at))
)

DELETE_UPLOAD = delete(_u).where(_u.c.id == _p(_u.c.id))

UPLOAD = select(_u.c.id, _u.c.repository, _u.c.size, _u.c.created_at).where(
    _u.c.id == bindparam("upload_id")
)

# -- listing pages on the SQLite fast path (the caller fetches only a page of rows) ----

# ``last`` is "" for the first page: every name sorts after it.
TAG_PAGE = (
    select(_t.c.name)
    .where(_t.c.repository_id == _p(_t.c.repository_id), _t.c.name > bindparam("last"))
    .order_by(_t.c.name)
)

REPOSITORY_PAGE = select(_r.c.name).where(_r.c.name > bindparam("last")).order_by(_r.c.name)

UNQUARANTINE = delete(s.blob_checks).where(
    s.blob_checks.c.digest == _p(s.blob_checks.c.digest),
    s.blob_checks.c.quarantined_at.is_not(None),
)


@dataclass(frozen=True, slots=True)
class Upserts:
    """The ``INSERT ... ON CONFLICT`` statements, in one dialect's spelling."""

    repository: Any  # -> id, none when it exists
    blob: Any
    link: Any  # a link made again is young again
    manifest: Any  # -> id, none when it exists
    tag: Any  # -> name, none when it exists


@cache
def upserts(dialect: str) -> Upserts:
    """The :class:`Upserts` for ``dialect`` (``sqlite`` or ``postgresql``)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    link = insert(_rb).values(
        repository_id=_p(_rb.c.repository_id),
        digest=_p(_rb.c.digest),
        created_at=_p(_rb.c.created_at),
    )
    return Upserts(
        repository=insert(_r)
        .values(name=_p(_r.c.name), created_at=_p(_r.c.created_at))
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(_r.c.id),
        blob=insert(s.blobs)
        .values(
            digest=_p(s.blobs.c.digest),
            size=_p(s.blobs.c.size),
            created_at=_p(s.blobs.c.created_at),
        )
        .on_conflict_do_nothing(index_elements=["digest"]),
        link=link.on_conflict_do_update(
            index_elements=["repository_id", "digest"],
            set_={"created_at": link.excluded.created_at},
        ),
        manifest=insert(_m)
        .values({c: _p(c) for c in _m.c if c.name != "id"})
        .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
        .returning(_m.c.id),
        tag=insert(_t)
        .values({c: _p(c) for c in _t.c})
        .on_conflict_do_nothing(index_elements=["repository_id", "name"])
        .returning(_t.c.name),
    )


def write_statements(dialect: str) -> list[Any]:
    """The constant statements of a push's write transactions, in ``dialect``."""
    u = upserts(dialect)
    return [
        REPOSITORY_ID,
        HOLD_MANIFEST,
        MANIFEST_FOR_UPDATE,
        INSERT_MANIFEST_REF,
        TAG_FOR_UPDATE,
        MOVE_TAG,
        REMOVE_TAG,
        INSERT_TAG_HISTORY,
        INSERT_UPLOAD,
        ADVANCE_UPLOAD,
        DELETE_UPLOAD,
        UNQUARANTINE,
        *(u.repository, u.blob, u.link, u.manifest, u.tag),
    ]
