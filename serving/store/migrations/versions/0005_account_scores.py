"""stored account scores

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Each account's latest score (``serving.store.tables.StoredScore``), so that a rep's first
worklist view reads its accounts' scores instead of computing every one from its events.
Derived data: the table starts empty (``nba score`` fills it) and the downgrade drops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_scores",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("scoring_key", sa.String(length=64), nullable=False),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("churn_risk", sa.Float(), nullable=False),
        sa.Column("churn_band", sa.String(length=16), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_account_scores_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_scores")),
    )


def downgrade() -> None:
    op.drop_table("account_scores")
