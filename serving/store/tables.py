"""The store's tables (SQLAlchemy 2.0 declarative); the migrations create exactly these.

Conventions, chosen so one schema works the same on SQLite and PostgreSQL and round-trips the
canonical in-memory form of ``features.schema`` exactly:

- every time is a ``BIGINT`` of nanoseconds since the Unix epoch, UTC (the canonical
  ``datetime64[ns, UTC]`` stored without loss; SQLite has no timestamp type and
  PostgreSQL's ``timestamptz`` keeps only microseconds);
- vocabulary values (channel, event_type, role, ...) are the taxonomy's names as text;
  the taxonomy, not the database, decides what is allowed;
- list columns (content phases and roles) and small records (model versions, scopes) are
  JSON.

The journey tables (accounts, contacts, content, touchpoints, stages, exposures) mirror the
data contract; the service tables (recommendations, feedback, served_actions,
dismissed_items, account_scores, api_keys, action_posteriors) hold what the service serves
and hears back.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Outcomes a recommendation can have (POST /v1/feedback).
FEEDBACK_OUTCOMES = ("shown", "accepted", "dismissed", "converted")
# What a logged serving is: the first serving of an action to an account's contact in the
# contact policy's week is a decision (what caps count and the off-policy log holds); serving
# it again within that week is an impression of that decision.
ServedKind = Literal["decision", "impression"]
SERVED_KINDS: tuple[str, ...] = get_args(ServedKind)

# Stable constraint names, so migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Account(Base):
    """An account; created by ``nba load`` or, with whatever the event carries, by ingestion."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String, primary_key=True)
    industry: Mapped[str | None] = mapped_column(String)
    # Unknown for accounts first seen in an event without an ``account`` object.
    employees: Mapped[int | None] = mapped_column(BigInteger)
    region: Mapped[str | None] = mapped_column(String)
    # Unknown when the data did not say: the account was created at its first activity
    # (``features.schema.account_created_at``).
    created_at: Mapped[int | None] = mapped_column(BigInteger)
    annual_revenue: Mapped[float | None] = mapped_column(Float)
    owner_rep_id: Mapped[str | None] = mapped_column(String, index=True)
    # Custom attributes ({name: value}, features.attributes); None when there are none.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The company's name for people (pages, answers); None: shown by its id (migration 0010).
    name: Mapped[str | None] = mapped_column(Text)
    # Bumped whenever the account's data changes: the scorer's feature cache is keyed by
    # it, so features computed from older rows are not served after an event arrives.
    data_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class Contact(Base):
    __tablename__ = "contacts"

    contact_id: Mapped[str] = mapped_column(String, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    role: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[int] = mapped_column(BigInteger)
    left_at: Mapped[int | None] = mapped_column(BigInteger)
    # The person's name for people; None: shown by the id (migration 0010).
    name: Mapped[str | None] = mapped_column(Text)


class Content(Base):
    """The content and action catalog (content, sales plays and service plays)."""

    __tablename__ = "content"

    content_id: Mapped[str] = mapped_column(String, primary_key=True)
    # Unknown for an item only named by events; without phases or roles (NULL, an empty
    # list in memory) it fits every phase and role (``features.schema.fits_every``).
    content_type: Mapped[str | None] = mapped_column(String)
    phases: Mapped[list[str] | None] = mapped_column(JSON)
    roles: Mapped[list[str] | None] = mapped_column(JSON)
    topic: Mapped[str | None] = mapped_column(String)
    value: Mapped[float | None] = mapped_column(Float)
    title: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String)


class Touchpoint(Base):
    """One touchpoint; ``event_id`` is the idempotency key of ingestion."""

    __tablename__ = "touchpoints"
    __table_args__ = (Index("ix_touchpoints_account_id_ts", "account_id", "ts"),)

    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.contact_id"))
    ts: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String)
    event_type: Mapped[str] = mapped_column(String)
    content_id: Mapped[str | None] = mapped_column(ForeignKey("content.content_id"))
    value: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Stage(Base):
    """A phase recorded in the CRM; the same (account, ts, phase) is stored once."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("account_id", "ts", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    ts: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String)


class Exposure(Base):
    """What a policy showed or sent, with its propensity (for off-policy evaluation)."""

    __tablename__ = "exposures"
    __table_args__ = (Index("ix_exposures_account_id_ts", "account_id", "ts"),)

    exposure_id: Mapped[str] = mapped_column(String, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.contact_id"))
    ts: Mapped[int] = mapped_column(BigInteger)
    content_id: Mapped[str] = mapped_column(ForeignKey("content.content_id"))
    channel: Mapped[str] = mapped_column(String)
    propensity: Mapped[float] = mapped_column(Float)
    # The slot it was shown in (a whole number, 1 = first), if known.
    position: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The policy that chose it (its propensity is under this policy), if known.
    policy: Mapped[str | None] = mapped_column(String)
    # What the policy could have chosen for the top slot then, JSON {contact_id:
    # [content_id, ...]}, if known.
    servable: Mapped[str | None] = mapped_column(Text)


class Recommendation(Base):
    """One action served to a caller, with the propensity the serving policy gave it.

    No foreign key to accounts: cold-start answers for unknown accounts are logged too.
    """

    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_account_id_served_at", "account_id", "served_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String, index=True)
    account_id: Mapped[str] = mapped_column(String)
    contact_id: Mapped[str | None] = mapped_column(String)
    content_id: Mapped[str] = mapped_column(String)
    rank: Mapped[int] = mapped_column(Integer)
    expected_value: Mapped[float] = mapped_column(Float)
    propensity: Mapped[float] = mapped_column(Float)
    policy: Mapped[str] = mapped_column(String)
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    served_at: Mapped[int] = mapped_column(BigInteger)
    # One of SERVED_KINDS: a decision, or an impression of a decision served before.
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'decision'"))
    # The online posterior's segment the decision counted in (None: not counted, e.g.
    # learning between retrains off) and when a response first rewarded it there.
    segment: Mapped[str | None] = mapped_column(String)
    rewarded_at: Mapped[int | None] = mapped_column(BigInteger)
    # A top-slot decision's servable actions, JSON {contact_id: [content_id, ...]} (None:
    # not known): what another policy judged on the log may choose among.
    servable: Mapped[str | None] = mapped_column(Text)


class Feedback(Base):
    """What happened to a recommendation."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(
            "outcome IN (" + ", ".join(f"'{o}'" for o in FEEDBACK_OUTCOMES) + ")",
            name="outcome",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[str] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)


class ServedAction(Base):
    """The last time each distinct action was decided for an account (served as a decision,
    not an impression): what the contact policy's weekly caps count, kept beside the full
    log so a request reads a handful of rows however often the account was served.
    ``contact_id`` is '' for account-level actions (a key column cannot be null)."""

    __tablename__ = "served_actions"

    account_id: Mapped[str] = mapped_column(String, primary_key=True)
    contact_id: Mapped[str] = mapped_column(String, primary_key=True)
    content_id: Mapped[str] = mapped_column(String, primary_key=True)
    last_served_at: Mapped[int] = mapped_column(BigInteger)


class ActionPosterior(Base):
    """Learning between retrains: per next-content model version, segment (the account's
    likeliest phase) and item, the decisions served, how many a response rewarded (from
    feedback or a later response touchpoint) and how many the model expected (the sum of
    the decisions' predicted probabilities), shared by every worker."""

    __tablename__ = "action_posteriors"

    model_version: Mapped[str] = mapped_column(String, primary_key=True)
    segment: Mapped[str] = mapped_column(String, primary_key=True)
    content_id: Mapped[str] = mapped_column(String, primary_key=True)
    trials: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    successes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    expected: Mapped[float] = mapped_column(Float, server_default=text("0"))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class DismissedItem(Base):
    """The last time an account dismissed each content item (from feedback): what the
    "dismissed recently" rule reads."""

    __tablename__ = "dismissed_items"

    account_id: Mapped[str] = mapped_column(String, primary_key=True)
    content_id: Mapped[str] = mapped_column(String, primary_key=True)
    last_dismissed_at: Mapped[int] = mapped_column(BigInteger)


class StoredScore(Base):
    """An account's latest score as the scorer's state (``serving.scoring.stored``): phase
    probabilities, churn risk, every candidate's P(response), the reasons explained so far
    and the consumed history arbitration reads, computed as of ``as_of`` from the account's
    rows at ``data_version`` with the models and catalog ``scoring_key`` names. Written by
    ``nba score`` and by worklists that had to compute it; a row whose ``data_version`` is
    behind the account's (an event arrived) or whose ``scoring_key`` is not the serving one
    (a model moved) is stale and recomputed. ``phase``, ``churn_risk`` and ``churn_band``
    repeat the state's headline for people reading the table."""

    __tablename__ = "account_scores"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), primary_key=True)
    data_version: Mapped[int] = mapped_column(BigInteger)
    scoring_key: Mapped[str] = mapped_column(String(64))
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    as_of: Mapped[int] = mapped_column(BigInteger)
    # NULL when that model is not served (a partial model set).
    phase: Mapped[str | None] = mapped_column(String)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    churn_band: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[bytes] = mapped_column(LargeBinary)


class FeatureStateRow(Base):
    """An account's feature state (``features.pipeline.incremental``: its events as codes,
    older ones folded into aggregates) at the account's ``data_version``: built by ``nba
    load`` and by the first cold request that finds none current, updated by ingestion
    with the account's new events. A row whose ``data_version`` is behind the account's is
    stale (it is rebuilt from the account's rows)."""

    __tablename__ = "feature_states"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), primary_key=True)
    data_version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes] = mapped_column(LargeBinary)


class ApiKeyRow(Base):
    """An API key: only a salted SHA-256 of its secret part is stored.

    The plaintext is ``nba_<key_id>_<secret>``; ``key_id`` (public) finds the row, the
    secret (256 random bits) is checked against ``key_hash``. A slow password hash buys
    nothing for a 256-bit random secret and would cost every request milliseconds.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        # One active key per name; revoked keys keep their name for the audit trail.
        Index(
            "uq_api_keys_name_active",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    # The rep the key belongs to (``nba keys create --rep``): it then reads and gives
    # feedback on that rep's accounts only. An attribute, not part of the name, so no name
    # can grant or lose access by how it is spelled.
    rep_id: Mapped[str | None] = mapped_column(String)


# Each table by name, typed as a ``Table`` (a mapped class's ``__table__`` is only a
# ``FromClause`` to the type checker).
BY_NAME: dict[str, Table] = dict(Base.metadata.tables)
