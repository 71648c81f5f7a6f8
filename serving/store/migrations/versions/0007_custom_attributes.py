"""custom attributes and exposure positions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

A JSON ``attributes`` object ({name: value}) on accounts, touchpoints and exposures for the
custom attributes a deployment declares (``features.attributes``), and an exposure's
``position`` (the slot it was shown in). Both are nullable: rows stored before have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("accounts", "touchpoints", "exposures")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("attributes", sa.JSON(), nullable=True))
    op.add_column("exposures", sa.Column("position", sa.Float(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): batch mode would copy and drop the accounts
    # table, which the other tables' foreign keys refer to.
    op.drop_column("exposures", "position")
    for table in _TABLES:
        op.drop_column(table, "attributes")
