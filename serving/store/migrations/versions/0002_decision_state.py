"""served actions and dismissed items per account

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Compact tables beside the recommendation log and feedback: the last time each distinct
action was served to an account, and the last time an account dismissed each item. A
recommendation request reads these (a few rows per account) instead of aggregating the
account's whole log. Filled from the existing rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "served_actions",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("contact_id", sa.String(), nullable=False),
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("last_served_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "contact_id", "content_id", name=op.f("pk_served_actions")
        ),
    )
    op.create_table(
        "dismissed_items",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("last_dismissed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "content_id", name=op.f("pk_dismissed_items")),
    )
    op.execute(
        "INSERT INTO served_actions (account_id, contact_id, content_id, last_served_at) "
        "SELECT account_id, COALESCE(contact_id, ''), content_id, MAX(served_at) "
        "FROM recommendations GROUP BY account_id, COALESCE(contact_id, ''), content_id"
    )
    op.execute(
        "INSERT INTO dismissed_items (account_id, content_id, last_dismissed_at) "
        "SELECT r.account_id, r.content_id, MAX(f.at) FROM feedback f "
        "JOIN recommendations r ON r.id = f.recommendation_id WHERE f.outcome = 'dismissed' "
        "GROUP BY r.account_id, r.content_id"
    )


def downgrade() -> None:
    op.drop_table("dismissed_items")
    op.drop_table("served_actions")
