"""stored scores of partial model sets

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Serving runs with whatever models the registry holds: without a phase model a stored
score has no phase, without a churn model no churn risk or band. The headline columns of
``account_scores`` become nullable (NULL: that model is not served). The downgrade makes
them NOT NULL again; it fails while rows hold NULLs there (none is made up).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NULLABLE = (
    ("phase", sa.String()),
    ("churn_risk", sa.Float()),
    ("churn_band", sa.String(length=16)),
)


def _alter(nullable: bool) -> None:
    with op.batch_alter_table("account_scores") as batch:
        for column, kind in _NULLABLE:
            batch.alter_column(column, existing_type=kind, nullable=nullable)


def upgrade() -> None:
    _alter(True)


def downgrade() -> None:
    _alter(False)
