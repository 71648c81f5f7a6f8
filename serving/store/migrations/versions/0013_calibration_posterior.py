"""learning between retrains: the calibration posterior's expected successes

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29

The online posterior became multiplicative: per key it counts the responses the served
decisions had and the successes the model expected of them (``action_posteriors.expected``,
the sum of their predicted probabilities), and corrects each account's own prediction by
their ratio (docs/DESIGN.md, Serving). Counts made before could not say what the model
expected (the predictions were not kept), so they are dropped and the decisions they counted
leave their segment: the posterior of the serving model restarts from the model's prior, as
after a retrain, and a later response to such a decision counts nowhere. The decisions and
their feedback stay in the log.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM action_posteriors")
    op.execute("UPDATE recommendations SET segment = NULL WHERE segment IS NOT NULL")
    op.add_column(
        "action_posteriors",
        sa.Column("expected", sa.Float(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("action_posteriors") as batch:
        batch.drop_column("expected")
