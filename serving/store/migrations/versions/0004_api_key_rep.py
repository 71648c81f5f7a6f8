"""the rep an API key belongs to

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Rep binding becomes an attribute of the key (``api_keys.rep_id``, ``nba keys create --rep``)
instead of a name prefix, and reading rep worklists becomes a scope of its own
(``worklists:read``); names carry no meaning any more.

So that no key already issued to a rep changes behaviour, each active key named exactly
``rep:<rep_id>`` (lower case, as the old prefix rule matched) gets that ``rep_id`` and, if it
could read recommendations, ``worklists:read`` (it read its own rep's worklist). Admin keys
are left unbound: admin read every rep's data before and still does. Other keys get nothing:
before, any key not named ``widget:...`` read every rep's worklist with
``recommendations:read`` (a key named ``crm-widget`` included), which is the hole this closes;
a service key that needs worklists is given ``worklists:read`` on a new key.

The downgrade drops the column; a ``worklists:read`` left in a scope list grants nothing to
the older code, and keys bound by ``--rep`` under other names lose their binding.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REP_PREFIX = "rep:"
_keys = sa.table(
    "api_keys",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("revoked_at", sa.BigInteger()),
    sa.column("rep_id", sa.String()),
)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rep_id", sa.String(), nullable=True))
    conn = op.get_bind()
    # LIKE is case-insensitive on SQLite, so it only narrows; the exact, case-sensitive
    # prefix test the old rule made is the Python one below.
    rows = conn.execute(
        sa.select(_keys.c.id, _keys.c.name, _keys.c.scopes).where(
            _keys.c.name.like(_OLD_REP_PREFIX + "%"), _keys.c.revoked_at.is_(None)
        )
    ).all()
    for key_id, name, scopes in rows:
        rep_id = name[len(_OLD_REP_PREFIX) :]
        if not name.startswith(_OLD_REP_PREFIX) or not rep_id or "admin" in scopes:
            continue
        if "recommendations:read" in scopes and "worklists:read" not in scopes:
            scopes = sorted({*scopes, "worklists:read"})
        conn.execute(
            sa.update(_keys).where(_keys.c.id == key_id).values(rep_id=rep_id, scopes=scopes)
        )


def downgrade() -> None:
    op.drop_column("api_keys", "rep_id")
