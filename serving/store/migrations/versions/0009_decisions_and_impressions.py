"""decisions and impressions; the policy of an exposure

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

A served action is a decision the first time it is served to an account's contact in the
contact policy's week; serving it again within that week is an impression of the decision
(docs/DESIGN.md, Serving). ``recommendations.kind`` says which (rows logged before were all
taken as decisions, as they were counted). ``exposures.policy`` names the policy that chose
an exposure, whose propensity is under that policy (``nba export`` writes the service's
decisions as exposures with it); rows stored before have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "recommendations",
        sa.Column(
            "kind", sa.String(length=16), nullable=False, server_default=sa.text("'decision'")
        ),
    )
    op.add_column("exposures", sa.Column("policy", sa.String(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35), as in 0007.
    op.drop_column("exposures", "policy")
    op.drop_column("recommendations", "kind")
