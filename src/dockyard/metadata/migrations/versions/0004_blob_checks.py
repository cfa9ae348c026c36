"""Integrity checks: when fsck last verified each blob, and quarantined blobs.

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
# 0003 (scale-out) is being written in parallel; once it lands this becomes "0003".
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_checks",
        sa.Column("digest", sa.String(160), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("problem", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("digest", name="pk_blob_checks"),
    )


def downgrade() -> None:
    op.drop_table("blob_checks")
