"""learning between retrains: the online posterior's counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28

``action_posteriors`` holds, per next-content model version, segment (the account's likeliest
phase) and item, the decisions served and how many a response rewarded: the counts of the
Beta posterior every worker's Thompson sampling reads (docs/DESIGN.md, Serving).
``recommendations.segment`` is the segment a decision counted in (None when it was not
counted) and ``recommendations.rewarded_at`` when a response first rewarded it, so that a
decision is rewarded once however many responses and feedback name it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_posteriors",
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("segment", sa.String(), nullable=False),
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("trials", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("successes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_version", "segment", "content_id", name=op.f("pk_action_posteriors")
        ),
    )
    op.add_column("recommendations", sa.Column("segment", sa.String(), nullable=True))
    op.add_column("recommendations", sa.Column("rewarded_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("recommendations", "rewarded_at")
    op.drop_column("recommendations", "segment")
    op.drop_table("action_posteriors")
