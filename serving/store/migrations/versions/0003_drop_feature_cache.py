"""drop the feature cache table

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Nothing in the service read or wrote ``feature_cache``: the scorer keeps features in
memory, keyed by ``accounts.data_version``. Its rows are derived data, so dropping them
loses nothing; the downgrade recreates the table empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("feature_cache")


def downgrade() -> None:
    op.create_table(
        "feature_cache",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("pipeline_version", sa.String(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "pipeline_version", name=op.f("pk_feature_cache")),
    )
