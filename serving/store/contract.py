"""The store in the data contract: its journey tables plus what the service served and heard
back, as the tables of a data directory (``features.schema``), for ``nba export`` and
``nba train --store``.

- The journey tables (accounts, contacts, content, touchpoints, stages, exposures) are read
  as they are stored.
- Every **decision** the service served (``recommendations`` of kind ``decision``, see
  ``serving.store.tables.SERVED_KINDS``) for an account the store holds is one more exposure:
  its recommendation id as ``exposure_id``, the account, the contact (none for an
  account-level action), the time it was served, the item and the item's channel, the exact
  ``propensity`` the serving policy gave it, its rank as ``position`` and the ``policy``.
  Impressions (a decision shown again) are not exposures: the decision is. Cold-start answers
  for accounts the store does not hold, and actions on items without a channel, cannot be
  exposures of the contract and are counted in the notes.
- Outcomes are touchpoints: those the service ingested, and each ``converted`` feedback as a
  touchpoint of :data:`CONVERTED_EVENT_TYPE` on the recommendation's account, contact and
  item at the feedback's time (event id ``feedback-<id>``), so the response window that labels
  exposures finds it. Other feedback (shown, accepted, dismissed) says what a person in the
  CRM did, not the account: it stays in the store, counted in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from features.schema import TABLE_ORDER
from serving.store.frames import canonical_frame, schema_select
from serving.store.journey import JourneyStore
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
        transaction. Rows come in key order, so two reads of the same store are equal."""
        frames: dict[str, pd.DataFrame] = {}
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # one snapshot for every table (SQLite's read transaction is one already)
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                frames.update(self._read_tables(conn))
                served = _served(conn)
                feedback = _feedback(conn)
        channel = _item_channels(frames["content"])
        known = set(frames["accounts"]["account_id"].astype(str))
        decisions = served[served["kind"] == "decision"]
        in_store = decisions[decisions["account_id"].isin(known)]
        with_channel = in_store[in_store["content_id"].map(channel).notna()]
        converted = feedback[
            (feedback["outcome"] == "converted") & feedback["account_id"].isin(known)
        ]
        converted = converted[converted["content_id"].map(channel).notna()]
        frames["exposures"] = _concat(frames["exposures"], _exposures(with_channel, channel))
        frames["touchpoints"] = _concat(frames["touchpoints"], _touchpoints(converted, channel))
        counts = {
            "decisions": len(with_channel),
            "impressions": int((served["kind"] == "impression").sum()),
            "unknown_account": len(decisions) - len(in_store),
            "no_channel": len(in_store) - len(with_channel),
            "converted": len(converted),
            "other_feedback": len(feedback) - int((feedback["outcome"] == "converted").sum()),
        }
        return ContractTables(frames, counts)

    def _read_tables(self, conn: Connection) -> dict[str, pd.DataFrame]:
        """Every journey table as stored, canonical, rows in key order."""
        frames = {}
        for name in TABLE_ORDER:
            table = BY_NAME[name]
            rows = conn.execute(schema_select(name).order_by(*table.primary_key.columns)).all()
            frames[name] = canonical_frame(name, rows, self.taxonomy)
        return frames


def _served(conn: Connection) -> pd.DataFrame:
    """Every logged serving, in time order."""
    r = Recommendation
    rows = conn.execute(
        select(
            r.id, r.account_id, r.contact_id, r.served_at, r.content_id, r.rank,
            r.propensity, r.policy, r.kind,
        ).order_by(r.served_at, r.id)
    ).all()  # fmt: skip
    columns = [
        "id", "account_id", "contact_id", "served_at", "content_id", "rank",
        "propensity", "policy", "kind",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _feedback(conn: Connection) -> pd.DataFrame:
    """Every feedback row with its recommendation's account, contact and item."""
    rows = conn.execute(
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
    ).all()
    columns = ["id", "outcome", "at", "account_id", "contact_id", "content_id"]
    return pd.DataFrame(rows, columns=columns)


def _item_channels(content: pd.DataFrame) -> pd.Series:
    """content_id -> the item's channel (text; items without one are absent)."""
    known = content[content["channel"].notna()]
    return pd.Series(
        known["channel"].astype(str).to_numpy(), index=known["content_id"].astype(str).to_numpy()
    )


def _times(ns: pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.to_numpy(dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _contacts(values: pd.Series) -> pd.Series:
    """Contact ids as text, missing for account-level actions."""
    return pd.Series(
        [None if v is None else str(v) for v in values], index=values.index, dtype="str"
    )


def _exposures(decisions: pd.DataFrame, channel: pd.Series) -> pd.DataFrame:
    """The served decisions as exposures (see the module docstring)."""
    return pd.DataFrame(
        {
            "exposure_id": decisions["id"].astype("str"),
            "account_id": decisions["account_id"].astype("str"),
            "contact_id": _contacts(decisions["contact_id"]),
            "ts": _times(decisions["served_at"]),
            "content_id": decisions["content_id"].astype("str"),
            "channel": decisions["content_id"].map(channel).astype("str"),
            "propensity": decisions["propensity"].astype(np.float64),
            "position": decisions["rank"].astype(np.float64),
            "policy": decisions["policy"].astype("str"),
        }
    )


def _touchpoints(converted: pd.DataFrame, channel: pd.Series) -> pd.DataFrame:
    """Converted feedback as touchpoints (see the module docstring)."""
    return pd.DataFrame(
        {
            "event_id": ("feedback-" + converted["id"].astype(str)).astype("str"),
            "account_id": converted["account_id"].astype("str"),
            "contact_id": _contacts(converted["contact_id"]),
            "ts": _times(converted["at"]),
            "channel": converted["content_id"].map(channel).astype("str"),
            "event_type": CONVERTED_EVENT_TYPE,
            "content_id": converted["content_id"].astype("str"),
        }
    )


def _concat(stored: pd.DataFrame, added: pd.DataFrame) -> pd.DataFrame:
    """``added`` rows after the ``stored`` ones (columns the added rows lack are missing);
    validation brings every column back to its canonical dtype."""
    if added.empty:
        return stored
    columns = [*stored.columns, *(c for c in added.columns if c not in stored.columns)]
    parts = [stored.astype(object), added.astype(object)] if len(stored) else [added]
    return pd.concat(parts, ignore_index=True).reindex(columns=columns)
