"""Stored account scores (``account_scores``) and what a rep's worklist reads in one go.

A worklist used to score each of the rep's accounts from its events (tens of milliseconds
per account). It now reads, in one read transaction, each account's data version, its
decision state (served this week, dismissed) and its stored score when that is current: the
account's data version unchanged since it was computed (ingestion bumps it), the same
scoring key (models and catalog) and not older than the caller allows. Only the accounts
without one are scored, together, and their scores written back (:meth:`save_scores`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import and_, delete, select

from features.timestamps import to_ns
from serving.store.decisions import AccountActivity
from serving.store.engine import IN_CHUNK, Database
from serving.store.tables import (
    BY_NAME,
    Account,
    Contact,
    DismissedItem,
    ServedAction,
    StoredScore,
)


@dataclass(frozen=True)
class NewScore:
    """An account's score to store: its serialized state (``serving.scoring.stored``) as of
    ``as_of``, computed from the account's rows at ``data_version`` under ``scoring_key``."""

    account_id: str
    data_version: int
    scoring_key: str
    model_versions: dict[str, str]
    as_of: pd.Timestamp
    phase: str | None  # None: no phase model served
    churn_risk: float | None  # None: no churn model served
    churn_band: str | None
    state: bytes


@dataclass(frozen=True)
class RepAccount:
    """One of a rep's accounts as a worklist reads it: its activity (data version, served,
    dismissed) and its current stored state (None when missing or stale)."""

    account_id: str
    activity: AccountActivity
    stored: bytes | None


class ScoreStore(Database):
    """Stored account scores and the worklist's read."""

    def rep_accounts(
        self,
        rep_id: str,
        *,
        scoring_key: str,
        scored_since: pd.Timestamp,
        served_since: pd.Timestamp,
        dismissed_since: pd.Timestamp,
    ) -> list[RepAccount]:
        """The accounts owned by ``rep_id`` (sorted by id) with what a worklist needs of
        each, in one read transaction: data version, actions served at or after
        ``served_since``, items dismissed at or after ``dismissed_since`` (as
        :meth:`DecisionLog.account_activity` reads them), the account's and its contacts'
        names, and the stored state when it was
        computed at the account's current data version, under ``scoring_key`` and as of
        ``scored_since`` or later."""
        mine = Account.owner_rep_id == rep_id
        current = and_(
            StoredScore.account_id == Account.account_id,
            StoredScore.data_version == Account.data_version,
            StoredScore.scoring_key == scoring_key,
            StoredScore.as_of >= to_ns(scored_since),
        )
        with self.engine.connect() as conn:
            accounts = conn.execute(
                select(Account.account_id, Account.data_version, StoredScore.state, Account.name)
                .outerjoin(StoredScore, current)
                .where(mine)
                .order_by(Account.account_id)
            ).all()
            served = conn.execute(
                select(
                    ServedAction.account_id,
                    ServedAction.contact_id,
                    ServedAction.content_id,
                    ServedAction.last_served_at,
                )
                .join(Account, Account.account_id == ServedAction.account_id)
                .where(mine, ServedAction.last_served_at >= to_ns(served_since))
            ).all()
            dismissed = conn.execute(
                select(
                    DismissedItem.account_id,
                    DismissedItem.content_id,
                    DismissedItem.last_dismissed_at,
                )
                .join(Account, Account.account_id == DismissedItem.account_id)
                .where(mine, DismissedItem.last_dismissed_at >= to_ns(dismissed_since))
            ).all()
            names = conn.execute(
                select(Contact.account_id, Contact.contact_id, Contact.name)
                .join(Account, Account.account_id == Contact.account_id)
                .where(mine, Contact.name.is_not(None))
            ).all()
        names_of: dict[str, dict[str, str]] = {}
        for account_id, contact_id, name in names:
            names_of.setdefault(account_id, {})[contact_id] = str(name)
        served_of: dict[str, list[tuple[str | None, str, int]]] = {}
        for account_id, contact_id, content_id, at in served:
            served_of.setdefault(account_id, []).append((contact_id or None, content_id, int(at)))
        dismissed_of: dict[str, list[tuple[str, int]]] = {}
        for account_id, content_id, at in dismissed:
            dismissed_of.setdefault(account_id, []).append((content_id, int(at)))
        return [
            RepAccount(
                account_id=account_id,
                activity=AccountActivity(
                    data_version=int(version),
                    owner_rep_id=rep_id,
                    served=served_of.get(account_id, []),
                    dismissed=dismissed_of.get(account_id, []),
                    name=name,
                    contact_names=names_of.get(account_id, {}),
                ),
                stored=None if state is None else bytes(state),
            )
            for account_id, version, state, name in accounts
        ]

    def save_scores(self, scores: Sequence[NewScore]) -> None:
        """Store the scores (one transaction), replacing an account's row unless it holds
        a score of newer data (a later data version) than the one given."""
        if not scores:
            return
        rows: list[dict[str, Any]] = [
            {
                "account_id": s.account_id,
                "data_version": int(s.data_version),
                "scoring_key": s.scoring_key,
                "model_versions": {str(k): str(v) for k, v in s.model_versions.items()},
                "as_of": to_ns(s.as_of),
                "phase": s.phase,
                "churn_risk": None if s.churn_risk is None else float(s.churn_risk),
                "churn_band": s.churn_band,
                "state": s.state,
            }
            for s in sorted(scores, key=lambda s: s.account_id)  # lock order
        ]
        table = BY_NAME["account_scores"]
        statement = self._insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["account_id"],
            set_={c: getattr(statement.excluded, c) for c in rows[0] if c != "account_id"},
            where=table.c.data_version <= statement.excluded.data_version,
        )
        with self._write() as conn:
            conn.execute(statement, rows)

    def data_versions(self, account_ids: Sequence[str]) -> dict[str, int]:
        """account_id -> data version of the given accounts the store holds (read before
        their rows, a score stored under it is stale as soon as an event arrives)."""
        ids = list(account_ids)
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                query = select(Account.account_id, Account.data_version).where(
                    Account.account_id.in_(chunk)
                )
                out.update({a: int(v) for a, v in conn.execute(query).all()})
        return out

    def delete_scores(self) -> int:
        """Delete every stored score (worklists then compute and store them again, e.g.
        after a bad ``nba score`` run); returns the rows deleted."""
        with self._write() as conn:
            return int(conn.execute(delete(BY_NAME["account_scores"])).rowcount)

    def stored_scores(self) -> pd.DataFrame:
        """Every stored score's headline (account_id, data_version, scoring_key, as_of,
        phase, churn_risk, churn_band), by account id (for ``nba score`` and tests)."""
        table = BY_NAME["account_scores"]
        columns = ["account_id", "data_version", "scoring_key", "as_of", "phase"]
        columns += ["churn_risk", "churn_band"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*(table.c[c] for c in columns)).order_by(table.c.account_id)
            ).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        frame["as_of"] = pd.to_datetime(frame["as_of"].astype("int64"), utc=True)
        return frame
