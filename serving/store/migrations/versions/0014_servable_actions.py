"""servable actions of a decision

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

A top-slot decision logs what could have filled the slot (the actions the eligibility
rules and contact caps let through), as JSON ``{contact_id: [content_id, ...]}``:
``recommendations.servable``, and ``exposures.servable`` in the data contract (``nba
export`` writes it). A challenger judged on the served log then chooses among what the
service could serve at that moment (docs/DESIGN.md, The closed loop). Rows stored before
have none (not known).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("recommendations", sa.Column("servable", sa.Text(), nullable=True))
    op.add_column("exposures", sa.Column("servable", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35), as in 0009.
    op.drop_column("exposures", "servable")
    op.drop_column("recommendations", "servable")
