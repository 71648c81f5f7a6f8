"""optional firmographics and content descriptions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

Real exports often carry an account with nothing but its id, and a content item with
nothing but its id (and a title): the data contract makes ``accounts.created_at`` and
``content.content_type`` / ``phases`` / ``roles`` / ``topic`` nullable (industry, employees
and region already were). An account without ``created_at`` was created at its first
activity (``features.schema.account_created_at``); an item without phases or roles (NULL
here, an empty list in memory) fits every phase and role. NULL, not ``[]``, so that a load
that does not know an item's phases keeps the ones stored (``COALESCE``).

The downgrade makes the columns NOT NULL again; it fails while rows hold NULLs there (they
cannot be told apart from real values afterwards, so none is made up).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NULLABLE = (
    ("accounts", "created_at", sa.BigInteger()),
    ("content", "content_type", sa.String()),
    ("content", "phases", sa.JSON()),
    ("content", "roles", sa.JSON()),
    ("content", "topic", sa.String()),
)


def _alter(nullable: bool) -> None:
    for table in ("accounts", "content"):
        with op.batch_alter_table(table) as batch:
            for name, column, kind in _NULLABLE:
                if name == table:
                    batch.alter_column(column, existing_type=kind, nullable=nullable)


def upgrade() -> None:
    _alter(True)


def downgrade() -> None:
    _alter(False)
