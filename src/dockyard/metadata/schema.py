"""The metadata schema: one SQLAlchemy Core definition for SQLite and PostgreSQL.

Alembic migrations under ``migrations/versions`` create exactly these tables; a test
compares the two so they cannot drift.

- ``repositories``: one row per repository, created by its first blob link or manifest.
- ``blobs``: every blob the store holds, once, with its size.
- ``repository_blobs``: which repository may serve which blob (uploaded or mounted there).
- ``manifests``: the exact bytes pushed, per repository, with what a listing needs
  (media type, artifact type, subject, annotations).
- ``manifest_refs``: what each manifest references (blobs, child manifests).
- ``tags`` and ``tag_history``: the mutable pointers and every move they ever made.
- ``uploads``: upload sessions in progress, with their committed size.
- ``robots``: robot accounts for CI, with their hashed secret, rules, expiry, revocation.
- ``cache_pulls``: the pull-through cache's blobs with their last pull, for LRU eviction.
- ``blob_checks``: fsck's last verification of each blob, and its quarantine.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

DIGEST = 160  # "sha512:" + 128 hex digits, with room to spare

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(DIGEST), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("digest", String(DIGEST), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", String(DIGEST), nullable=True),
    Column("annotations", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
)

manifest_refs = Table(
    "manifest_refs",
    metadata,
    Column(
        "manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("digest", String(DIGEST), primary_key=True),
    # "blob" for a config or layer, "manifest" for a child of an index.
    Column("kind", String(8), primary_key=True),
    Index(None, "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("manifest_digest", String(DIGEST), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "repository_id", "manifest_digest"),
)

tag_history = Table(
    "tag_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("tag", String(128), nullable=False),
    # None old digest: the tag was created; None new digest: the tag was deleted.
    Column("old_digest", String(DIGEST), nullable=True),
    Column("new_digest", String(DIGEST), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    # What moved it: "push", "delete", "manifest-delete", later "retention:<rule>", "cache".
    Column("reason", String(64), nullable=False),
    Index(None, "repository_id", "tag", "id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository", String(255), nullable=False),
    # Bytes committed so far: the next chunk must start here.
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

robots = Table(
    "robots",
    metadata,
    Column("name", String(64), primary_key=True),
    # bcrypt of the secret; the secret itself is shown once, at creation, and never stored.
    Column("secret_hash", String(128), nullable=False),
    # [{"repositories": "team-a/**", "actions": ["pull", "push"]}, ...]
    Column("rules", JSON, nullable=False),
    Column("description", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Integrity (docs/lifecycle.md): when fsck last re-hashed a blob, and whether it found
# the bytes corrupt. A quarantined blob is never served; re-uploading good bytes lifts it.
blob_checks = Table(
    "blob_checks",
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("quarantined_at", DateTime(timezone=True), nullable=True),
    Column("problem", String(255), nullable=True),
)

# Pull-through cache (docs/cache.md): when each cached blob was last pulled, per upstream,
# so the cache evicts the least recently pulled blobs first when it exceeds max_size.
cache_pulls = Table(
    "cache_pulls",
    metadata,
    Column("upstream", String(64), primary_key=True),
    Column("digest", String(DIGEST), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("last_pulled_at", DateTime(timezone=True), nullable=False),
    Index(None, "upstream", "last_pulled_at"),
)
