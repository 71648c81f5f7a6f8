"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26

The journey tables (accounts, contacts, content, touchpoints, stages, exposures) and the
service tables (feature_cache, recommendations, feedback, api_keys); see
``serving.store.tables``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("employees", sa.BigInteger(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("annual_revenue", sa.Float(), nullable=True),
        sa.Column("owner_rep_id", sa.String(), nullable=True),
        sa.Column("data_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_owner_rep_id"), "accounts", ["owner_rep_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=16), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_index(
        "uq_api_keys_name_active",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.create_table(
        "content",
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("content_id", name=op.f("pk_content")),
    )
    op.create_table(
        "feature_cache",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("pipeline_version", sa.String(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "pipeline_version", name=op.f("pk_feature_cache")),
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("contact_id", sa.String(), nullable=True),
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        sa.Column("served_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    op.create_index(
        "ix_recommendations_account_id_served_at",
        "recommendations",
        ["account_id", "served_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_recommendations_request_id"), "recommendations", ["request_id"], unique=False
    )

    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("left_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_contacts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_account_id"), "contacts", ["account_id"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recommendation_id", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('shown', 'accepted', 'dismissed', 'converted')",
            name=op.f("ck_feedback_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_feedback_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(
        op.f("ix_feedback_recommendation_id"), "feedback", ["recommendation_id"], unique=False
    )

    op.create_table(
        "stages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_stages_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        sa.UniqueConstraint(
            "account_id", "ts", "phase", name=op.f("uq_stages_account_id_ts_phase")
        ),
    )
    op.create_table(
        "exposures",
        sa.Column("exposure_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("contact_id", sa.String(), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("content_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_exposures_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.contact_id"], name=op.f("fk_exposures_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["content_id"], ["content.content_id"], name=op.f("fk_exposures_content_id_content")
        ),
        sa.PrimaryKeyConstraint("exposure_id", name=op.f("pk_exposures")),
    )
    op.create_index("ix_exposures_account_id_ts", "exposures", ["account_id", "ts"], unique=False)

    op.create_table(
        "touchpoints",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("contact_id", sa.String(), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("content_id", sa.String(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_touchpoints_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.contact_id"], name=op.f("fk_touchpoints_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["content_id"], ["content.content_id"], name=op.f("fk_touchpoints_content_id_content")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_touchpoints")),
    )
    op.create_index(
        "ix_touchpoints_account_id_ts", "touchpoints", ["account_id", "ts"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_touchpoints_account_id_ts", table_name="touchpoints")

    op.drop_table("touchpoints")
    op.drop_index("ix_exposures_account_id_ts", table_name="exposures")

    op.drop_table("exposures")
    op.drop_table("stages")
    op.drop_index(op.f("ix_feedback_recommendation_id"), table_name="feedback")

    op.drop_table("feedback")
    op.drop_index(op.f("ix_contacts_account_id"), table_name="contacts")

    op.drop_table("contacts")
    op.drop_index(op.f("ix_recommendations_request_id"), table_name="recommendations")
    op.drop_index("ix_recommendations_account_id_served_at", table_name="recommendations")

    op.drop_table("recommendations")
    op.drop_table("feature_cache")
    op.drop_table("content")
    op.drop_index(
        "uq_api_keys_name_active",
        table_name="api_keys",
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.drop_table("api_keys")
    op.drop_index(op.f("ix_accounts_owner_rep_id"), table_name="accounts")

    op.drop_table("accounts")
