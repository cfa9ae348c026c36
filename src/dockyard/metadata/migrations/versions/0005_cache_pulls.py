"""Pull-through cache: when each cached blob was last pulled, for LRU eviction.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_pulls",
        sa.Column("upstream", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(160), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("last_pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upstream", "digest", name="pk_cache_pulls"),
    )
    op.create_index(
        "ix_cache_pulls_upstream_last_pulled_at", "cache_pulls", ["upstream", "last_pulled_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_cache_pulls_upstream_last_pulled_at", table_name="cache_pulls")
    op.drop_table("cache_pulls")
