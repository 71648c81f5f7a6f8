"""account and contact names

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

The data contract's optional ``accounts.name`` (the company's name) and ``contacts.name``
(the person's name): the pages and answers show them beside the ids. Rows stored before have
none and are shown by their id.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("name", sa.Text(), nullable=True))
    op.add_column("contacts", sa.Column("name", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35), as in 0007.
    op.drop_column("contacts", "name")
    op.drop_column("accounts", "name")
