"""Scoring one known account: an answer per request from its state.

``serving.scoring.states`` computes the state (the cold path: phase probabilities, a
calibrated churn risk, P(response) of every (current contact x catalog item) candidate and
the ``pred_contrib`` reasons of the phase, the churn risk and the greedy top-k actions).
:func:`decide` (the warm path, run on every request) only re-runs arbitration on the state
(served/dismissed history, filters, exploration) and explains actions not explained yet
(an explored action's reason is that it was drawn at random);
it works on arrays and never builds a DataFrame for an action already explained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.arbitration import (
    AccountContext,
    Action,
    Decision,
    OnlinePosterior,
    Recent,
    ServableActions,
    rank_actions,
    servable_actions,
)
from models.contract import NEXT_CONTENT
from models.explain import Reason, contributions_for, exploration_reason, reason_codes
from serving.model_set import ModelSet
from serving.scoring.answer import AccountScore, ScoredAction
from serving.scoring.cache import AccountState
from serving.scoring.predict import (
    MAX_REASONS,
    ScoringSetup,
    SingleThreaded,
    booster,
)
from serving.scoring.rows import RowSource


@dataclass(frozen=True)
class Request:
    """One recommendation request: the account, the time, how many actions, the filters,
    the history arbitration reads (``served``: contact_id, content_id, ts; ``dismissed``:
    content_id, ts), the exploration coin (None: drawn from ``rng``), the online posterior
    and the share of decisions given to the version under trial."""

    account_id: str
    now: pd.Timestamp
    k: int
    rng: np.random.Generator
    contact_id: str | None = None
    role: str | None = None
    channel: str | None = None
    served: pd.DataFrame | Recent | None = None
    dismissed: pd.DataFrame | Recent | None = None
    explore: bool | None = None
    online: OnlinePosterior | None = None
    challenger_share: float = 0.0
    challenger_version: str = ""


@dataclass(frozen=True)
class CandidateRows:
    """The cold path's candidate rows (blocks of the catalog: row = block x n_items +
    item): the values reasons read, their encoded matrix and contact_id -> the contact's
    block (contacts whose rows are equal may share one)."""

    rows: RowSource
    x: np.ndarray
    contact_position: dict[str, int]


def decide(
    setup: ScoringSetup,
    models: ModelSet,
    state: AccountState,
    request: Request,
    *,
    hit: bool,
    computed: CandidateRows | None = None,
) -> AccountScore:
    """Returns the answer to ``request`` from the account's cached ``state``; ``computed``
    (the candidate rows the state was just computed from) saves rebuilding the rows of the
    actions to explain."""
    decision = rank(setup, state, request)
    # An explored action was drawn at random: its reason says so (the model's contributions
    # would explain a choice nobody made, and computing them costs the answer milliseconds).
    explored = (
        (exploration_reason(decision.exploration_rate, decision.n_eligible),)
        if decision.explored
        else ()
    )
    sampled = _sampled_unexplained(decision, state)
    explain = [a for a in decision.actions if not a.explored and a not in sampled]
    if computed is not None and decision.explored:
        # The explored slot pushed the greedy k-th action out; the next answers (which
        # seldom explore) show it: explain it now, from the rows at hand, not on the warm
        # path. (A fresh generator: the greedy ranking must not draw from the request's.)
        greedy = dataclasses.replace(request, rng=np.random.default_rng(0), explore=False)
        explain += rank(setup, state, greedy).actions
    reasons = action_reasons(setup, models, state, explain, computed)
    proba = state.phase_proba
    has_phase, has_risk = models.phase is not None, models.churn is not None
    return AccountScore(
        account_id=request.account_id,
        as_of=request.now,
        phase_proba=dict(zip(setup.phases, proba.tolist(), strict=True)) if has_phase else {},
        phase=setup.phases[int(np.argmax(proba))] if has_phase else None,
        phase_reasons=state.phase_reasons,
        churn_risk=state.churn_risk if has_risk else None,
        churn_band=decision.churn_band if has_risk else None,
        churn_reasons=state.churn_reasons,
        actions=tuple(
            ScoredAction(
                a,
                explored
                if a.explored
                else (
                    sampled_reason(
                        a.propensity,
                        challenger=decision.challenger
                        and (a.rank == 1 or decision.segment is None),
                    ),
                )
                if a in sampled
                else reasons.get((a.contact_id, a.content_id), ()),
            )
            for a in decision.actions
        ),
        held_back=decision.held_back,
        policy=decision.policy,
        explored=decision.explored,
        versions=dict(models.versions),
        cold_start=False,
        cache_hit=hit,
        outcomes=dict(state.outcomes),
        missing=dict(models.missing),
        segment=decision.segment,
        why_now=state.why_now,
        servable=decision.servable,
    )


# The reason feature of a top slot the online posterior's draw gave to an action not
# explained yet (``sampled_reason``).
SAMPLED = "online_sampling"
# ... and of a top slot the version under trial picked (``sampled_reason``).
CHALLENGER_PICK = "challenger_trial"


def _sampled_unexplained(decision: Decision, state: AccountState) -> tuple[Action, ...]:
    """The actions of an answer the online posterior's draw decided that the cold path did
    not explain (it explains the greedy answer): a draw away from the greedy top reorders
    the slots, and explaining them here would cost the warm answer a ``pred_contrib`` call
    (milliseconds) on the event loop."""
    if decision.segment is None and not decision.challenger:
        return ()
    known = state.action_reasons
    return tuple(
        a for a in decision.actions if not a.explored and (a.contact_id, a.content_id) not in known
    )


def sampled_reason(propensity: float, *, challenger: bool = False) -> Reason:
    """The reason of an action an answer drawn on the online posterior (or given to the
    version under trial: ``challenger``) holds without the model's reasons (see
    :func:`_sampled_unexplained`)."""
    by = (
        "the model version on trial against the champion"
        if challenger
        else "what the service has learnt from responses since the model was trained"
    )
    return Reason(
        feature=CHALLENGER_PICK if challenger else SAMPLED,
        value=float(propensity),
        contribution=0.0,
        text=(
            f"chosen with {by} (served in {propensity * 100:.3g} % of answers for this "
            "account now); the model's own reasons are not computed for this answer"
        ),
    )


def rank(setup: ScoringSetup, state: AccountState, request: Request) -> Decision:
    """Returns arbitration's decision for ``request`` on the state's candidates."""
    return rank_actions(
        _context(setup, state, request),
        state.candidates,
        setup.catalog,
        setup.config,
        k=request.k,
        rng=request.rng,
        now=request.now,
        explore=request.explore,
        online=request.online,
        challenger_share=request.challenger_share,
        challenger_version=request.challenger_version,
    )


def servable(setup: ScoringSetup, state: AccountState, request: Request) -> ServableActions:
    """What arbitration could put in the top slot for ``request`` on the state's
    candidates (``models.arbitration.servable_actions``)."""
    return servable_actions(
        _context(setup, state, request),
        state.candidates,
        setup.catalog,
        setup.config,
        now=request.now,
    )


def _context(setup: ScoringSetup, state: AccountState, request: Request) -> AccountContext:
    """The arbitration context of ``request`` on the account's state."""
    extra: dict[str, Any] = {}
    if request.served is not None:
        extra["served_last_week"] = request.served
    if request.dismissed is not None:
        extra["dismissed"] = request.dismissed
    return AccountContext(
        account_id=request.account_id,
        phase_proba=state.phase_proba,
        phase_names=setup.phases,
        # Without a churn model the churn lever is off: the risk counts as none.
        churn_risk=0.0 if np.isnan(state.churn_risk) else state.churn_risk,
        consumed=state.consumed,
        contact_id=request.contact_id,
        role=request.role,
        channel=request.channel,
        **extra,
    )


def action_reasons(
    setup: ScoringSetup,
    models: ModelSet,
    state: AccountState,
    actions: Sequence[Action],
    computed: CandidateRows | None = None,
) -> dict[tuple[str, str], tuple[Reason, ...]]:
    """Returns (contact_id, content_id) -> reasons of each action, computing (in one
    pred_contrib call) the ones not yet explained and remembering them in the state.
    ``computed`` (the cold path's candidate rows) saves rebuilding the rows."""
    known = state.action_reasons
    missing = list(
        dict.fromkeys(
            (a.contact_id, a.content_id)
            for a in actions
            if (a.contact_id, a.content_id) not in known
        )
    )
    if missing:
        _explain(setup, models, state, missing, computed)
    return {(a.contact_id, a.content_id): known[(a.contact_id, a.content_id)] for a in actions}


def _explain(
    setup: ScoringSetup,
    models: ModelSet,
    state: AccountState,
    missing: Sequence[tuple[str, str]],
    computed: CandidateRows | None,
) -> None:
    """Computes the reasons of the (contact_id, content_id) pairs ``missing`` into the
    state's ``action_reasons``."""
    spec = models.inputs[NEXT_CONTENT]
    columns = list(spec.columns)
    items = np.array([setup.catalog.position[i] for _, i in missing], dtype=np.int64)
    if computed is not None:
        at = (
            np.array([computed.contact_position[c] for c, _ in missing], dtype=np.int64)
            * len(setup.content)
            + items
        )
        # contacts sharing a role share their rows: each row is explained once
        rows_at, row_of = np.unique(at, return_inverse=True)
        x = computed.x[rows_at]
        values = [computed.rows.values(int(r)) for r in at.tolist()]
    else:
        prepared = state.candidates
        role_of = dict(
            zip(prepared.contact_ids.tolist(), prepared.contact_roles.tolist(), strict=True)
        )
        x, rows = setup.candidate_encoder(models).encode(
            state.account_values(), [role_of.get(c) or None for c, _ in missing], items
        )
        values = [rows.values(r) for r in range(len(missing))]
        row_of = np.arange(len(missing))
    contrib = contributions_for(SingleThreaded(booster(models.next_content)), x)[row_of]
    known = state.action_reasons
    for j, pair in enumerate(missing):
        # dict item assignment is atomic; two threads may at worst explain a pair twice
        known[pair] = tuple(
            reason_codes(
                contrib[j],
                columns,
                values[j],
                top=MAX_REASONS,
                direction=1,
                definitions=setup.definitions,
                labels=setup.labels,
            )
        )
