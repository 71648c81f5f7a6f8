"""feature states

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28

Each account's feature state (``serving.store.tables.FeatureStateRow``), so that a cold
account's features come from its state and its few new events instead of all its rows.
Derived data: the table starts empty (``nba load`` and the first cold request per account
fill it) and the downgrade drops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feature_states",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_feature_states_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_feature_states")),
    )


def downgrade() -> None:
    op.drop_table("feature_states")
