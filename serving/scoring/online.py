"""Scoring one known account: its cached state computed once, then an answer per request.

:func:`compute_state` (the cold path) turns an account's rows into phase probabilities, a
calibrated churn risk, P(response) of every (current contact x catalog item) candidate and
the ``pred_contrib`` reasons of the phase, the churn risk and the greedy top-k actions.
:func:`decide` (the warm path, run on every request) only re-runs arbitration on the state
(served/dismissed history, filters, exploration) and explains actions not explained yet;
it works on arrays and never builds a DataFrame for an action already explained.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.pipeline import select_accounts
from features.schema import JourneyData
from features.timestamps import NS_PER_DAY
from models.arbitration import (
    AccountContext,
    Action,
    Decision,
    Recent,
    addressees,
    churn_band,
    prepare_candidates,
    rank_actions,
)
from models.churn import calibrate
from models.contract import CHURN, NEXT_CONTENT, PHASE
from models.explain import Reason, contributions_for, reason_codes
from serving.model_set import PREDICT_THREADS, ModelSet
from serving.scoring.answer import AccountScore, ScoredAction
from serving.scoring.cache import AccountState
from serving.scoring.predict import (
    MAX_REASONS,
    ScoringSetup,
    SingleThreaded,
    booster,
    churn_raw,
    current_contacts,
)


@dataclass(frozen=True)
class Request:
    """One recommendation request: the account, the time, how many actions, the filters,
    the history arbitration reads (``served``: contact_id, content_id, ts; ``dismissed``:
    content_id, ts) and the exploration coin (None: drawn from ``rng``)."""

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


@dataclass(frozen=True)
class CandidateRows:
    """The cold path's candidate rows (contact-major: row = contact x n_items + item), their
    encoded matrix and contact_id -> contact position."""

    rows: pd.DataFrame
    x: np.ndarray
    contact_position: dict[str, int]


def decide(
    setup: ScoringSetup, models: ModelSet, state: AccountState, request: Request, *, hit: bool
) -> AccountScore:
    """Returns the answer to ``request`` from the account's cached ``state``."""
    decision = rank(setup, state, request)
    reasons = action_reasons(setup, models, state, decision.actions)
    proba = state.phase_proba
    return AccountScore(
        account_id=request.account_id,
        as_of=request.now,
        phase_proba=dict(zip(setup.phases, proba.tolist(), strict=True)),
        phase=setup.phases[int(np.argmax(proba))],
        phase_reasons=state.phase_reasons,
        churn_risk=state.churn_risk,
        churn_band=decision.churn_band,
        churn_reasons=state.churn_reasons,
        actions=tuple(
            ScoredAction(a, reasons.get((a.contact_id, a.content_id), ())) for a in decision.actions
        ),
        held_back=decision.held_back,
        policy=decision.policy,
        explored=decision.explored,
        versions=dict(models.versions),
        cold_start=False,
        cache_hit=hit,
    )


def rank(setup: ScoringSetup, state: AccountState, request: Request) -> Decision:
    """Returns arbitration's decision for ``request`` on the state's candidates."""
    extra: dict[str, Any] = {}
    if request.served is not None:
        extra["served_last_week"] = request.served
    if request.dismissed is not None:
        extra["dismissed"] = request.dismissed
    context = AccountContext(
        account_id=request.account_id,
        phase_proba=state.phase_proba,
        phase_names=setup.phases,
        churn_risk=state.churn_risk,
        consumed=state.consumed,
        contact_id=request.contact_id,
        role=request.role,
        channel=request.channel,
        **extra,
    )
    return rank_actions(
        context,
        state.candidates,
        setup.catalog,
        setup.config,
        k=request.k,
        rng=request.rng,
        now=request.now,
        explore=request.explore,
    )


def compute_state(
    setup: ScoringSetup,
    models: ModelSet,
    data: JourneyData,
    account_id: str,
    now: pd.Timestamp,
    *,
    ttl_ns: int,
) -> AccountState | None:
    """Returns the account's state as of ``now`` (features, predictions, reasons of the
    greedy answer), or None when ``data`` has no account row or it is created after ``now``.
    ``ttl_ns`` is how long the state will be served (it bounds the consumed history kept)."""
    one = select_accounts(data, [account_id])
    if one.accounts.empty:
        return None
    frame = setup.features(one, now)
    if frame is None:
        return None
    proba = setup.phase_proba(models, frame)
    risk = float(calibrate(churn_raw(models, frame), dict(models.calibration))[0])
    values = {str(c): v for c, v in frame.iloc[0].items()}
    predicted = int(np.argmax(proba[0]))
    phase_reasons = model_reasons(setup, models, PHASE, frame, values, class_index=predicted)
    band = churn_band(risk, setup.config)
    churn_reasons = model_reasons(
        setup, models, CHURN, frame, values, direction=1 if band != "low" else -1
    )
    # without a current contact the account still gets account-level plays
    contacts = addressees(current_contacts(one.contacts, now))
    candidates, computed = _candidates(setup, models, frame, contacts)
    # Older rows cannot count as consumed recently while this state is served.
    horizon_ns = (
        now.value - int(setup.config.eligibility.consumed_recently_days * NS_PER_DAY) - ttl_ns
    )
    state = AccountState(
        as_of=now,
        as_of_ns=int(now.value),
        features=pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL),
        phase_proba=proba[0],
        phase_reasons=phase_reasons,
        churn_risk=risk,
        churn_reasons=churn_reasons,
        candidates=prepare_candidates(candidates, contacts, setup.catalog, account_id),
        consumed=_consumed(one.touchpoints, horizon_ns),
    )
    # The greedy answer is what nearly every request serves: explain it now, off the
    # warm path (one pred_contrib call for its k rows).
    greedy = Request(
        account_id, now, setup.config.default_k, np.random.default_rng(0), explore=False
    )
    action_reasons(setup, models, state, rank(setup, state, greedy).actions, computed)
    return state


def _consumed(touchpoints: pd.DataFrame, horizon_ns: int) -> Recent:
    """Returns the content touchpoints at or after ``horizon_ns`` as arbitration's history."""
    ts_ns = touchpoints["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    keep = touchpoints["content_id"].notna().to_numpy(dtype=bool) & (ts_ns >= horizon_ns)
    return Recent(
        content_id=touchpoints["content_id"].to_numpy(dtype=object)[keep].tolist(),
        ts_ns=ts_ns[keep],
        contact_id=touchpoints["contact_id"].to_numpy(dtype=object)[keep].tolist(),
    )


def model_reasons(
    setup: ScoringSetup,
    models: ModelSet,
    name: str,
    frame: pd.DataFrame,
    values: Mapping[str, Any],
    *,
    class_index: int | None = None,
    direction: int = 1,
) -> tuple[Reason, ...]:
    """Returns the top reasons (``pred_contrib``) of the phase or churn model's output for
    the one-row ``frame`` whose feature values are ``values``."""
    spec = models.inputs[name]
    estimator = {PHASE: models.phase, CHURN: models.churn}[name]
    contrib = contributions_for(
        SingleThreaded(booster(estimator)), spec.encode(frame), class_index=class_index
    )
    return tuple(
        reason_codes(
            contrib[0],
            list(spec.columns),
            values,
            top=MAX_REASONS,
            direction=direction,
            definitions=setup.definitions,
            labels=setup.labels,
        )
    )


def _candidates(
    setup: ScoringSetup, models: ModelSet, frame: pd.DataFrame, contacts: pd.DataFrame
) -> tuple[pd.DataFrame, CandidateRows | None]:
    """Returns (contact_id, content_id, p_response) for every current contact x catalog
    item, and the candidate rows behind it (contact-major), or None without contacts."""
    n_items = len(setup.content)
    ids = contacts["contact_id"].astype(str).to_numpy(dtype=object)
    if len(ids) == 0:
        empty = pd.DataFrame(
            {
                "contact_id": pd.Series([], dtype=object),
                "content_id": pd.Series([], dtype=object),
                "p_response": pd.Series([], dtype=np.float64),
            }
        )
        return empty, None
    rows = setup.candidate_rows(frame, contacts["role"].astype(object).tolist())
    x = models.inputs[NEXT_CONTENT].encode(rows)
    p = np.asarray(
        booster(models.next_content).predict(x, num_threads=PREDICT_THREADS),
        dtype=np.float64,
    )
    candidates = pd.DataFrame(
        {
            "contact_id": np.repeat(ids, n_items),
            "content_id": np.tile(setup.catalog.content_ids, len(ids)),
            "p_response": p,
        }
    )
    position = {c: i for i, c in enumerate(ids.tolist())}
    return candidates, CandidateRows(rows, x, position)


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
    missing = [
        (a.contact_id, a.content_id) for a in actions if (a.contact_id, a.content_id) not in known
    ]
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
        x = computed.x[at]
        table = computed.rows[columns].to_numpy(dtype=object)[at]
    else:
        prepared = state.candidates
        role_of = dict(
            zip(prepared.contact_ids.tolist(), prepared.contact_roles.tolist(), strict=True)
        )
        rows = setup.candidate_rows(
            state.feature_frame(), [role_of.get(c) or None for c, _ in missing], items
        )
        x = spec.encode(rows)
        table = rows[columns].to_numpy(dtype=object)
    contrib = contributions_for(SingleThreaded(booster(models.next_content)), x)
    known = state.action_reasons
    for j, pair in enumerate(missing):
        # dict item assignment is atomic; two threads may at worst explain a pair twice
        known[pair] = tuple(
            reason_codes(
                contrib[j],
                columns,
                dict(zip(columns, table[j].tolist(), strict=True)),
                top=MAX_REASONS,
                direction=1,
                definitions=setup.definitions,
                labels=setup.labels,
            )
        )
