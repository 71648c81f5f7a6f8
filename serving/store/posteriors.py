"""Learning between retrains in the store: the online posterior's counts every worker
shares (``action_posteriors``), counted as decisions are logged (a trial, and the model's
probability for it as expected successes) and rewarded once each, by feedback (accepted,
converted) or by a response touchpoint on the decision's item within
:data:`REWARD_WINDOW_NS` after it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, select, update

from features.schema import RESPONSE_EVENT_TYPES
from features.timestamps import NS_PER_DAY
from models.arbitration.thompson import clip_rate
from models.contract import NEXT_CONTENT
from serving.store.engine import Database
from serving.store.tables import BY_NAME, ActionPosterior, Recommendation

# A response counts for a decision of its item served to its account in the week before it
# (the contact policy's week, and the training reward's default window).
REWARD_WINDOW_NS = 7 * NS_PER_DAY
# Feedback outcomes that count as a response to the recommendation.
REWARDING_OUTCOMES = frozenset({"accepted", "converted"})
_RESPONSE_TYPES = frozenset(RESPONSE_EVENT_TYPES)


class PosteriorCounts(NamedTuple):
    """One key's counts: decisions served, how many a response rewarded, and the
    successes the model expected of them (the sum of its probabilities)."""

    trials: int
    successes: int
    expected: float


# What a rewarded decision adds to its key.
SUCCESS = PosteriorCounts(trials=0, successes=1, expected=0.0)


def trial(p: float) -> PosteriorCounts:
    """What a decision adds to its key when served: a trial the model expected ``p``
    successes of (its probability, kept off 0 and 1 as the posterior keeps it)."""
    return PosteriorCounts(trials=1, successes=0, expected=float(clip_rate(p)))


def posterior_key(model_versions: Mapping[str, str]) -> str:
    """The model version the posterior of a decision made with ``model_versions`` counts
    under ('' without a next-content model)."""
    return str(model_versions.get(NEXT_CONTENT, ""))


class PosteriorLog(Database):
    """The online posterior's counts: read by every worker, written with the decision log."""

    def posterior_counts(self, model_version: str) -> dict[tuple[str, str], PosteriorCounts]:
        """(segment, content_id) -> the counts of the next-content ``model_version``."""
        query = select(
            ActionPosterior.segment,
            ActionPosterior.content_id,
            ActionPosterior.trials,
            ActionPosterior.successes,
            ActionPosterior.expected,
        ).where(ActionPosterior.model_version == model_version)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {(r[0], r[1]): PosteriorCounts(int(r[2]), int(r[3]), float(r[4])) for r in rows}

    def _count_posterior(
        self,
        conn: Connection,
        counts: Iterable[tuple[tuple[str, str, str], PosteriorCounts]],
        now_ns: int,
    ) -> None:
        """Add each of ``counts`` to its (model version, segment, content_id) key (a key
        may repeat)."""
        added: dict[tuple[str, str, str], PosteriorCounts] = {}
        for key, c in counts:
            n, s, e = added.get(key, (0, 0, 0.0))
            added[key] = PosteriorCounts(n + c.trials, s + c.successes, e + c.expected)
        if not added:
            return
        table = BY_NAME["action_posteriors"]
        rows = [
            {
                "model_version": v,
                "segment": s,
                "content_id": c,
                **counted._asdict(),
                "updated_at": now_ns,
            }
            for (v, s, c), counted in sorted(added.items())  # one lock order for every writer
        ]
        statement = self._insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["model_version", "segment", "content_id"],
            set_={
                **{
                    column: table.c[column] + getattr(statement.excluded, column)
                    for column in PosteriorCounts._fields
                },
                "updated_at": statement.excluded.updated_at,
            },
        )
        conn.execute(statement, rows)

    def _reward(
        self,
        conn: Connection,
        responses: Sequence[tuple[str, str, int]],
        now_ns: int,
        *,
        decision_id: str | None = None,
    ) -> int:
        """Reward, once each, the latest counted decision of each (account_id, content_id)
        served in the window before the response's time (ns); ``decision_id`` rewards that
        decision itself if it is a counted one. Returns how many were newly rewarded."""
        keys: list[tuple[tuple[str, str, str], PosteriorCounts]] = []
        for account_id, content_id, at_ns in responses:
            if decision_id is not None:
                where: Any = Recommendation.id == decision_id
            else:
                where = and_(
                    Recommendation.account_id == account_id,
                    Recommendation.content_id == content_id,
                    Recommendation.served_at >= at_ns - REWARD_WINDOW_NS,
                    Recommendation.served_at <= at_ns,
                )
            found = conn.execute(
                select(Recommendation.id, Recommendation.segment, Recommendation.model_versions)
                .where(where, Recommendation.kind == "decision")
                .where(Recommendation.segment.is_not(None), Recommendation.rewarded_at.is_(None))
                .order_by(Recommendation.served_at.desc())
                .limit(1)
            ).first()
            if found is None:
                continue
            # Another transaction may have rewarded it since the read: the update counts once.
            done = conn.execute(
                update(Recommendation)
                .where(Recommendation.id == found.id, Recommendation.rewarded_at.is_(None))
                .values(rewarded_at=at_ns)
            )
            if done.rowcount == 1:
                key = (posterior_key(found.model_versions), found.segment, content_id)
                keys.append((key, SUCCESS))
        self._count_posterior(conn, keys, now_ns)
        return len(keys)

    def _reward_touchpoints(
        self, conn: Connection, touchpoints: Sequence[Mapping[str, Any]], now_ns: int
    ) -> int:
        """Reward the decisions that ingested response touchpoints (of the response event
        types, naming an item) answer; returns how many were newly rewarded."""
        responses = [
            (str(t["account_id"]), str(t["content_id"]), int(t["ts"]))
            for t in touchpoints
            if t.get("content_id") and t.get("event_type") in _RESPONSE_TYPES
        ]
        return self._reward(conn, responses, now_ns) if responses else 0
