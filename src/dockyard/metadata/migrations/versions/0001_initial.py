"""Initial schema: repositories, blobs, links, manifests, tags, tag history, uploads.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DIGEST = 160


def upgrade() -> None:
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_repositories"),
        sa.UniqueConstraint("name", name="uq_repositories_name"),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_blobs"),
    )
    op.create_table(
        "repository_blobs",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "digest", name="pk_repository_blobs"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_repository_blobs_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["digest"], ["blobs.digest"], name="fk_repository_blobs_digest_blobs"
        ),
    )
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject_digest", sa.String(DIGEST), nullable=True),
        sa.Column("annotations", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_manifests"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_manifests_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_id_digest"),
    )
    op.create_index(
        "ix_manifests_repository_id_subject_digest",
        "manifests",
        ["repository_id", "subject_digest"],
    )
    op.create_table(
        "manifest_refs",
        sa.Column("manifest_id", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("manifest_id", "digest", "kind", name="pk_manifest_refs"),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name="fk_manifest_refs_manifest_id_manifests",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_manifest_refs_digest", "manifest_refs", ["digest"])
    op.create_table(
        "tags",
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("manifest_digest", sa.String(DIGEST), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "name", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_tags_repository_id_repositories",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_tags_repository_id_manifest_digest", "tags", ["repository_id", "manifest_digest"]
    )
    op.create_table(
        "tag_history",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("old_digest", sa.String(DIGEST), nullable=True),
        sa.Column("new_digest", sa.String(DIGEST), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tag_history"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_tag_history_repository_id_repositories",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_tag_history_repository_id_tag_id", "tag_history", ["repository_id", "tag", "id"]
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
    )


def downgrade() -> None:
    for table in (
        "uploads",
        "tag_history",
        "tags",
        "manifest_refs",
        "manifests",
        "repository_blobs",
        "blobs",
        "repositories",
    ):
        op.drop_table(table)
