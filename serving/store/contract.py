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
from sqlalchemy import func, select

from features.schema import TABLE_ORDER
from serving.store.frames import canonical_frame, schema_select
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


class ContractReader(JourneyStore):
    """Reading the whole store as the data contract's tables."""

    def contract_tables(self) -> ContractTables:
        """Every journey table of the store with the served decisions as exposures and
        converted feedback as touchpoints (see the module docstring), in one read
        transaction. Rows come in key order, the added ones after the stored ones, so two
        reads of the same store are equal."""
        rows: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # one snapshot for every table (SQLite's read transaction is one already)
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                for name in TABLE_ORDER:
                    table = BY_NAME[name]
                    query = schema_select(name).order_by(*table.primary_key.columns)
                    rows[name] = list(conn.execute(query).all())
                content = canonical_frame("content", rows["content"], self.taxonomy)
                channel = item_channels(content)
                known = {str(r[0]) for r in rows["accounts"]}
                decisions, counts = decision_exposure_rows(conn, channel, known, every_account=True)
                feedback = conn.execute(_FEEDBACK).all()
                impressions = conn.execute(_IMPRESSIONS).scalar_one()
        converted = [
            f
            for f in feedback
            if f.outcome == "converted" and f.account_id in known and f.content_id in channel
        ]
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
