"""The decision log: recommendations served (with the propensity the policy gave them),
feedback on them, and the compact per-account state a recommendation request reads (the
last time each action was served, the items dismissed)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import Connection, Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from features.errors import InvalidInputError, NotFoundError
from features.timestamps import to_ns
from serving.store.posteriors import (
    REWARDING_OUTCOMES,
    PosteriorCounts,
    PosteriorLog,
    posterior_key,
    trial,
)
from serving.store.tables import (
    BY_NAME,
    FEEDBACK_OUTCOMES,
    Account,
    Contact,
    DismissedItem,
    Feedback,
    Recommendation,
    ServedAction,
    ServedKind,
    Touchpoint,
)

# The request path's reads, built once: SQLAlchemy then reuses their compiled form, where a
# statement built per call costs more Python than the query costs SQLite.
# The last time an action was decided for the account (the rep's or the CRM's last visit).
_LAST_SERVED = (
    select(func.max(ServedAction.last_served_at))
    .where(ServedAction.account_id == bindparam("account_id"))
    .scalar_subquery()
)
_VERSION_AND_OWNER = select(
    Account.data_version, Account.owner_rep_id, Account.name, _LAST_SERVED.label("last_served")
).where(Account.account_id == bindparam("account_id"))
_CONTACT_NAMES = select(Contact.contact_id, Contact.name).where(
    Contact.account_id == bindparam("account_id"), Contact.name.is_not(None)
)
# What happened to the account since its last visit, per event type (nothing when none).
_EVENTS_SINCE = (
    select(Touchpoint.event_type, func.count())
    .where(Touchpoint.account_id == bindparam("account_id"), Touchpoint.ts > _LAST_SERVED)
    .group_by(Touchpoint.event_type)
)
_SERVED_ACTIONS = select(
    ServedAction.contact_id, ServedAction.content_id, ServedAction.last_served_at
).where(
    ServedAction.account_id == bindparam("account_id"),
    ServedAction.last_served_at >= bindparam("since"),
)
_DISMISSED_ITEMS = select(DismissedItem.content_id, DismissedItem.last_dismissed_at).where(
    DismissedItem.account_id == bindparam("account_id"),
    DismissedItem.last_dismissed_at >= bindparam("since"),
)


# A served recommendation with its account's owner (``known`` is None when the store does
# not hold the account, e.g. a cold start).
_SERVED_WITH_OWNER = (
    select(
        Recommendation.account_id,
        Recommendation.content_id,
        Account.account_id.label("known"),
        Account.owner_rep_id.label("owner"),
    )
    .outerjoin(Account, Account.account_id == Recommendation.account_id)
    .where(Recommendation.id == bindparam("recommendation_id"))
)


class UnknownRecommendationError(NotFoundError):
    """Feedback for a recommendation id the store never served."""


class InvalidOutcomeError(InvalidInputError):
    """A feedback outcome that is not one of ``FEEDBACK_OUTCOMES``."""


class OtherRepsAccountError(InvalidInputError):
    """Feedback, from a key bound to a rep, on a recommendation for an account the rep does
    not own. Forbidden (403), as reading that account is."""

    http_status_override: ClassVar[int | None] = 403


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class NewRecommendation:
    """One action to log as served. ``propensity`` is the probability the serving
    ``policy`` gave this action (needed to evaluate other policies off-policy later);
    ``kind`` says whether this serving is a decision or an impression of a decision served
    earlier in the week (``serving.store.tables.SERVED_KINDS``; only decisions count for the
    caps);
    ``model_versions`` maps model names to the registry versions used. ``id`` is assigned
    on creation (the id the caller hands out); ``served_at`` None means the time the log
    call gives."""

    request_id: str
    account_id: str
    content_id: str
    rank: int
    expected_value: float
    propensity: float
    policy: str
    model_versions: Mapping[str, str] = field(default_factory=dict)
    contact_id: str | None = None
    id: str = field(default_factory=_new_id)
    served_at: pd.Timestamp | None = None
    kind: ServedKind = "decision"
    # The online posterior's segment a decision counts in (None: it counts in none), and
    # the model's probability of a response to it (the successes its key expects of it).
    segment: str | None = None
    p_response: float | None = None
    # A top-slot decision's servable actions as JSON (``models.arbitration.servable_json``;
    # None: not known): what a policy judged on this log may choose among.
    servable: str | None = None

    def at(self, served_at: pd.Timestamp) -> NewRecommendation:
        """This action served at ``served_at``."""
        return replace(self, served_at=served_at)


@dataclass(frozen=True)
class AccountActivity:
    """An account's data version, owner and recent decisions (:meth:`Store.account_activity`):
    ``served`` holds (contact_id, content_id, last served, ns since the epoch) per distinct
    action, ``dismissed`` (content_id, dismissed at, ns) per dismissal. ``name`` is the
    account's name and ``contact_names`` its contacts' (contact_id -> name; those without a
    name are left out); ``last_served_ns`` the last time an action was served for it (None:
    never) and ``events_since`` its touchpoints after that, per event type."""

    data_version: int
    owner_rep_id: str | None
    served: list[tuple[str | None, str, int]]
    dismissed: list[tuple[str, int]]
    name: str | None = None
    contact_names: Mapping[str, str] = field(default_factory=dict)
    last_served_ns: int | None = None
    events_since: Mapping[str, int] = field(default_factory=dict)


def _served_for_feedback(
    conn: Connection, recommendation_id: str, rep_id: str | None
) -> tuple[str, str] | None:
    """The (account_id, content_id) of a served recommendation, None if never served.
    Raises :class:`OtherRepsAccountError` when a key bound to ``rep_id`` gives feedback on it
    and its account is in the store and not ``rep_id``'s. An account the store does not hold
    (a cold start) has no owner to protect, as for reads."""
    served = conn.execute(_SERVED_WITH_OWNER, {"recommendation_id": recommendation_id}).first()
    if served is None:
        return None
    if rep_id is not None and served.known is not None and served.owner != rep_id:
        raise OtherRepsAccountError(
            f"feedback.recommendation_id {recommendation_id!r} was served for account "
            f"{served.account_id!r}, which belongs to another rep; a key bound to rep "
            f"{rep_id!r} gives feedback only on that rep's accounts"
        )
    return str(served.account_id), str(served.content_id)


def counts_in_posterior(item: NewRecommendation) -> bool:
    """Whether ``item`` counts in the online posterior: a decision made in a segment with
    the model's probability for it (a journal line written before the probability was kept
    counts in none)."""
    return item.kind == "decision" and item.segment is not None and item.p_response is not None


def _trials(
    items: Sequence[NewRecommendation], new_ids: set[str]
) -> list[tuple[tuple[str, str, str], PosteriorCounts]]:
    """The posterior keys of the newly stored decisions that count, each with its trial."""
    return [
        ((posterior_key(i.model_versions), str(i.segment), i.content_id), trial(i.p_response or 0))
        for i in items
        if counts_in_posterior(i) and i.id in new_ids
    ]


def _recommendation_row(item: NewRecommendation, served_ns: int) -> dict[str, Any]:
    return {
        "id": item.id,
        "request_id": item.request_id,
        "account_id": item.account_id,
        "contact_id": item.contact_id,
        "content_id": item.content_id,
        "rank": int(item.rank),
        "expected_value": float(item.expected_value),
        "propensity": float(item.propensity),
        "policy": item.policy,
        "model_versions": {str(k): str(v) for k, v in item.model_versions.items()},
        "served_at": served_ns,
        "kind": item.kind,
        "segment": item.segment if counts_in_posterior(item) else None,
        "servable": item.servable,
    }


class DecisionLog(PosteriorLog):
    """Served recommendations, feedback and the per-account decision state."""

    def log_recommendations(
        self, items: Sequence[NewRecommendation], *, served_at: pd.Timestamp | None = None
    ) -> list[str]:
        """Log served actions (one transaction); returns their ids, in order. Items without
        their own ``served_at`` were served at ``served_at`` (default: now). An id stored
        already is left as it is (journals replay rows that may be written, see
        ``serving.store.served_journal``)."""
        at = to_ns(served_at if served_at is not None else pd.Timestamp.now(tz="UTC"))
        times = [at if item.served_at is None else to_ns(item.served_at) for item in items]
        rows = [_recommendation_row(item, t) for item, t in zip(items, times, strict=True)]
        if rows:
            # The caps' state counts decisions: an impression re-shows one.
            last: dict[tuple[str, str, str], int] = {}
            for item, served_ns in zip(items, times, strict=True):
                if item.kind != "decision":
                    continue
                action = (item.account_id, item.contact_id or "", item.content_id)
                last[action] = max(last.get(action, served_ns), served_ns)
            with self._write() as conn:
                new = conn.execute(
                    self._insert(BY_NAME["recommendations"])
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(Recommendation.id),
                    rows,
                ).scalars()
                # Each decision counts once in the online posterior, however often replayed.
                self._count_posterior(conn, _trials(items, set(new)), at)
                # Only accounts the store holds get per-account state: anyone with a read key
                # can ask for any number of made-up ids, and their cold-start answers are
                # kept in the log above alone (no contact cap reads them: unknown accounts
                # have no activity).
                known = self._known_accounts(conn, {a for a, _, _ in last}) if last else set()
                state = [
                    {"account_id": a, "contact_id": c, "content_id": i, "last_served_at": t}
                    for (a, c, i), t in sorted(last.items())
                    if a in known
                ]
                if state:
                    self._upsert_latest(
                        conn,
                        BY_NAME["served_actions"],
                        ["account_id", "contact_id", "content_id"],
                        "last_served_at",
                        state,
                    )
        return [item.id for item in items]

    @staticmethod
    def _known_accounts(conn: Connection, account_ids: set[str]) -> set[str]:
        """The ids among ``account_ids`` that have an account row."""
        found = conn.execute(
            select(Account.account_id).where(Account.account_id.in_(sorted(account_ids)))
        ).scalars()
        return set(found)

    def _upsert_latest(
        self,
        conn: Connection,
        table: Table,
        keys: list[str],
        column: str,
        rows: list[dict[str, Any]],
    ) -> None:
        """Insert ``rows`` into ``table``, keeping the later ``column`` for existing keys."""
        statement = self._insert(table)
        later = func.max if self.dialect == "sqlite" else func.greatest  # the 2-argument max
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={column: later(table.c[column], getattr(statement.excluded, column))},
        )
        conn.execute(statement, rows)

    def record_feedback(
        self,
        recommendation_id: str,
        outcome: str,
        at: pd.Timestamp | None = None,
        note: str | None = None,
        *,
        rep_id: str | None = None,
    ) -> int:
        """Store what happened to a recommendation; returns the feedback id. Raises
        :class:`InvalidOutcomeError` for an outcome not in ``FEEDBACK_OUTCOMES``,
        :class:`UnknownRecommendationError` for an id never served and, for a key bound to
        ``rep_id``, :class:`OtherRepsAccountError` (nothing stored) when the recommendation's
        account is in the store and not ``rep_id``'s (see :func:`_served_for_feedback`)."""
        if outcome not in FEEDBACK_OUTCOMES:
            raise InvalidOutcomeError(
                f"feedback.outcome {outcome!r} is unknown; expected one of: "
                + ", ".join(FEEDBACK_OUTCOMES)
            )
        at_ns = to_ns(at if at is not None else pd.Timestamp.now(tz="UTC"))
        row = {
            "recommendation_id": recommendation_id,
            "outcome": outcome,
            "at": at_ns,
            "note": note,
        }
        unknown = UnknownRecommendationError(
            f"feedback.recommendation_id {recommendation_id!r} is unknown; expected the id "
            "of a served recommendation"
        )
        try:
            with self._write() as conn:
                served = _served_for_feedback(conn, recommendation_id, rep_id)
                if served is None:
                    raise unknown
                account_id, content_id = served
                feedback_id = int(
                    conn.execute(
                        insert(BY_NAME["feedback"]).returning(Feedback.id), row
                    ).scalar_one()
                )
                if outcome in REWARDING_OUTCOMES:
                    response = [(account_id, content_id, at_ns)]
                    if not self._reward(conn, response, at_ns, decision_id=recommendation_id):
                        # an impression's feedback counts for the decision it re-showed
                        self._reward(conn, response, at_ns)
                if outcome == "dismissed":
                    self._upsert_latest(
                        conn,
                        BY_NAME["dismissed_items"],
                        ["account_id", "content_id"],
                        "last_dismissed_at",
                        [
                            {
                                "account_id": account_id,
                                "content_id": content_id,
                                "last_dismissed_at": at_ns,
                            }
                        ],
                    )
                return feedback_id
        except IntegrityError as exc:  # deleted between the check and the insert
            raise unknown from exc

    def account_activity(
        self, account_id: str, *, served_since: pd.Timestamp, dismissed_since: pd.Timestamp
    ) -> AccountActivity | None:
        """What a recommendation request reads besides the account's rows, in one read
        transaction: the account's data version and owning rep, the distinct (contact_id,
        content_id) actions served at or after ``served_since`` with the last time each was
        served (what contact caps count; one row per action however often it was served) and
        the items dismissed at or after ``dismissed_since``. None if the account is
        unknown."""
        with self.engine.connect() as conn:
            account = conn.execute(_VERSION_AND_OWNER, {"account_id": account_id}).first()
            if account is None:
                return None
            served = conn.execute(
                _SERVED_ACTIONS, {"account_id": account_id, "since": to_ns(served_since)}
            ).all()
            dismissed = conn.execute(
                _DISMISSED_ITEMS, {"account_id": account_id, "since": to_ns(dismissed_since)}
            ).all()
            names = conn.execute(_CONTACT_NAMES, {"account_id": account_id}).all()
            last = account.last_served
            events = (
                []
                if last is None
                else conn.execute(_EVENTS_SINCE, {"account_id": account_id}).all()
            )
        return AccountActivity(
            data_version=int(account.data_version),
            owner_rep_id=account.owner_rep_id,
            served=[(r[0] or None, r[1], int(r[2])) for r in served],
            dismissed=[(r[0], int(r[1])) for r in dismissed],
            name=account.name,
            contact_names={r[0]: str(r[1]) for r in names},
            last_served_ns=None if last is None else int(last),
            events_since={r[0]: int(r[1]) for r in events},
        )
