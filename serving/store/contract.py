"""The store in the data contract: its journey tables plus what the service served and heard
back, as the tables of a data directory (``features.schema``), for ``nba export`` and
``nba train --store``.

- The journey tables (accounts, contacts, content, touchpoints, stages, exposures) are read
  as they are stored.
- Every **decision** the service served for an account the store holds is one more
  exposure (``serving.store.served_exposures``, which the online features read too).
  Cold-start answers for accounts the store does not hold, and actions on items without a
  channel, cannot be exposures of the contract and are counted in the notes.
- Outcomes are touchpoints: those the service ingested, and each ``converted`` feedback as a
  touchpoint of :data:`CONVERTED_EVENT_TYPE` on the recommendation's account, contact and
  item at the feedback's time (event id ``feedback-<id>``), so the response window that labels
  exposures finds it. Other feedback (shown, accepted, dismissed) says what a person in the
  CRM did, not the account: it stays in the store, counted in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, or_, select

from features.schema import TABLE_ORDER
from serving.store.frames import canonical_frame, schema_select, store_columns
from serving.store.journey import JourneyStore
from serving.store.served_exposures import decision_exposure_rows, item_channels
from serving.store.tables import BY_NAME, Feedback, Recommendation

# The event type a "converted" feedback becomes: the account answered the action.
CONVERTED_EVENT_TYPE = "reply"


@dataclass(frozen=True)
class ContractTables:
    """The store's tables in the data contract (canonical frames, custom attributes as
    columns) and notes on what was left out or added (counts)."""

    tables: dict[str, pd.DataFrame]
    counts: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """The counts as sentences for a report."""
        c = self.counts
        return [
            f"{c['decisions']:,} served decisions written as exposures (with their logged "
            f"propensity and policy); {c['impressions']:,} impressions of them are not decisions",
            f"{c['unknown_account']:,} decisions for accounts the store does not hold (cold "
            f"starts) and {c['no_channel']:,} on items without a channel left out",
            f"{c['converted']:,} converted feedback written as {CONVERTED_EVENT_TYPE!r} "
            f"touchpoints; {c['other_feedback']:,} other feedback (shown, accepted, dismissed) "
            "kept in the store only",
        ]


@dataclass(frozen=True)
class EventWindow:
    """The part of the event tables a reader needs (insights over a period): touchpoints
    and exposures at ``[since_ns, until_ns)``, and touchpoints of ``always_types`` whenever
    (e.g. every purchase, renewal and churn, which say who is a customer)."""

    since_ns: int
    until_ns: int
    always_types: tuple[str, ...] = ()


class ContractReader(JourneyStore):
    """Reading the whole store as the data contract's tables."""

    def latest_touchpoint_ns(self) -> int | None:
        """The time (ns) of the store's latest touchpoint; None when it holds none."""
        with self.engine.connect() as conn:
            latest = conn.execute(select(func.max(BY_NAME["touchpoints"].c.ts))).scalar_one()
        return None if latest is None else int(latest)

    def contract_tables(self, window: EventWindow | None = None) -> ContractTables:
        """Every journey table of the store with the served decisions as exposures and
        converted feedback as touchpoints (see the module docstring), in one read
        transaction. Rows come in key order, the added ones after the stored ones, so two
        reads of the same store are equal. With ``window``, touchpoints, exposures,
        decisions and converted feedback only in it (see :class:`EventWindow`); an account
        without ``created_at`` then gets its first activity in the whole store, as a full
        read would give it (``features.schema.account_created_at``)."""
        rows: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # one snapshot for every table (SQLite's read transaction is one already)
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                for name in TABLE_ORDER:
                    table = BY_NAME[name]
                    query = _in_window(schema_select(name), name, window)
                    rows[name] = list(conn.execute(query.order_by(*table.primary_key.columns)))
                content = canonical_frame("content", rows["content"], self.taxonomy)
                channel = item_channels(content)
                known = {str(r[0]) for r in rows["accounts"]}
                decisions, counts = decision_exposure_rows(conn, channel, known, every_account=True)
                feedback = conn.execute(_FEEDBACK).all()
                impressions = conn.execute(_IMPRESSIONS).scalar_one()
                if window is not None:
                    rows["accounts"] = _with_first_activity(conn, rows["accounts"], decisions)
        converted = [
            f
            for f in feedback
            if f.outcome == "converted" and f.account_id in known and f.content_id in channel
        ]
        if window is not None:
            ts = store_columns("exposures").index("ts")
            decisions = [d for d in decisions if window.since_ns <= d[ts] < window.until_ns]
            converted = [f for f in converted if window.since_ns <= int(f.at) < window.until_ns]
        rows["exposures"] += decisions
        rows["touchpoints"] += [_touchpoint_row(f, channel) for f in converted]
        frames = {name: canonical_frame(name, rows[name], self.taxonomy) for name in TABLE_ORDER}
        counts |= {
            "decisions": len(decisions),
            "impressions": int(impressions),
            "converted": len(converted),
            "other_feedback": sum(f.outcome != "converted" for f in feedback),
        }
        return ContractTables(frames, counts)


def _in_window(query: Any, name: str, window: EventWindow | None) -> Any:
    """``query`` of table ``name`` limited to ``window`` (touchpoints and exposures)."""
    if window is None or name not in ("touchpoints", "exposures"):
        return query
    table = BY_NAME[name]
    inside = and_(table.c.ts >= window.since_ns, table.c.ts < window.until_ns)
    if name == "touchpoints" and window.always_types:
        return query.where(or_(inside, table.c.event_type.in_(window.always_types)))
    return query.where(inside)


def _with_first_activity(conn: Any, accounts: list[Any], decisions: list[Any]) -> list[Any]:
    """``accounts`` rows with a missing ``created_at`` set to the account's earliest
    touchpoint, stage, exposure or decision in the whole store."""
    at = store_columns("accounts").index("created_at")
    missing = {str(r[0]) for r in accounts if r[at] is None}
    if not missing:
        return accounts
    first: dict[str, int] = {}
    for name in ("touchpoints", "stages", "exposures"):
        table = BY_NAME[name]
        query = select(table.c.account_id, func.min(table.c.ts)).group_by(table.c.account_id)
        for account, ts in conn.execute(query):
            if account in missing and ts is not None:
                first[account] = min(first.get(account, ts), ts)
    ts_at = store_columns("exposures").index("ts")
    for row in decisions:
        if row[1] in missing:
            first[row[1]] = min(first.get(row[1], row[ts_at]), row[ts_at])
    return [
        (*r[:at], first.get(str(r[0])), *r[at + 1 :]) if str(r[0]) in missing else r
        for r in accounts
    ]


# Every feedback row with its recommendation's account, contact and item.
_FEEDBACK = (
    select(
        Feedback.id,
        Feedback.outcome,
        Feedback.at,
        Recommendation.account_id,
        Recommendation.contact_id,
        Recommendation.content_id,
    )
    .join(Recommendation, Recommendation.id == Feedback.recommendation_id)
    .order_by(Feedback.id)
)
_IMPRESSIONS = select(func.count()).where(Recommendation.kind == "impression")


def _touchpoint_row(feedback: Any, channel: dict[str, str]) -> tuple[Any, ...]:
    """A converted feedback as a row of the store's touchpoint columns
    (``serving.store.frames.store_columns``): see the module docstring."""
    return (
        f"feedback-{feedback.id}",
        feedback.account_id,
        feedback.contact_id,
        int(feedback.at),
        channel[feedback.content_id],
        CONVERTED_EVENT_TYPE,
        feedback.content_id,
        None,  # value
        None,  # no custom attributes
    )
