"""``GET /v1/reps/{rep_id}/actions``: a sales rep's worklist — the rep's accounts ranked by
the expected value of their best next action."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import anyio.from_thread
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response

from serving.auth import check_worklist_access, require_scope
from serving.routes import Services, services
from serving.routes.recommendations import (
    CLIENT_CLOSED_REQUEST,
    SERVED_WINDOW,
    action_out,
    client_gone,
    dismissed_recent,
    log_actions,
    served_recent,
)
from serving.schemas import RepIdPath, WhyNowOut, WorklistItem, WorklistResponse
from serving.scoring import AccountScore, KnownAccount
from serving.store import AccountActivity, ApiKey

router = APIRouter(prefix="/v1", tags=["reps"])

# The worklist serves each account's greedy best action (no exploration): it is served with
# certainty, and logged as such under this suffix of the arbitration policy's name.
WORKLIST_POLICY_SUFFIX = "/worklist-greedy"


@router.get(
    "/reps/{rep_id}/actions",
    response_model=WorklistResponse,
    summary="A rep's ranked worklist",
    responses={
        401: {"description": "No or invalid API key."},
        403: {
            "description": "The key lacks scope worklists:read or is bound to another rep "
            "(nba keys create --rep)."
        },
        503: {"description": "No models are loaded yet (see /ready)."},
    },
)
def get_rep_actions(
    rep_id: RepIdPath,
    http: Request,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("worklists:read"))],
    limit: Annotated[int, Query(ge=1, le=500, description="Accounts to return.")] = 50,
) -> WorklistResponse | Response:
    """The accounts owned by ``rep_id``, best next action first: each with its phase,
    churn risk and the action with its reasons. Accounts without an action that passes the
    rules come last, riskiest first. A rep without accounts gets an empty list.

    Each account's state (features, predictions, reasons) comes from the per-account
    cache, else from the store's ``account_scores`` (``nba score`` writes them; current
    while the account has no new events and the models and catalog are the same), else is
    computed, all such accounts together, and stored for the next look. Arbitration runs
    on each state with the account's served and dismissed history, as for a
    recommendation request. The actions returned are logged (propensity 1: the worklist
    always shows the greedy best).

    Reading worklists needs scope ``worklists:read`` (a widget key has none); a key bound
    to a rep reads only that rep's worklist (403 for others'), a key without a rep any."""
    check_worklist_access(key, rep_id)
    now = svc.now()
    scored, activities = _score_accounts(svc, rep_id, now)

    def order(s: AccountScore) -> tuple[int, float, float, str]:
        best = s.actions[0].action.expected_value if s.actions else 0.0
        return (0 if s.actions else 1, -best, -(s.churn_risk or 0.0), s.account_id)

    top = sorted(scored, key=order)[:limit]
    # A client gone while its worklist was scored was served nothing: log nothing. (FastAPI
    # runs this route in a worker thread; the check runs on the event loop.)
    if anyio.from_thread.run(client_gone, http):
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    items: list[WorklistItem] = []
    for s in top:
        action = None
        activity = activities[s.account_id]
        if s.actions:
            first = s.actions[0]
            certain = replace(first, action=replace(first.action, propensity=1.0))
            logged = replace(s, policy=s.policy + WORKLIST_POLICY_SUFFIX)
            _, ids = log_actions(svc, logged, (certain,), now)
            action = action_out(certain, ids[0], activity.contact_names)
        items.append(
            WorklistItem(
                account_id=s.account_id,
                account_name=activity.name,
                phase=s.phase,
                phase_probability=None if s.phase is None else float(s.phase_proba[s.phase]),
                churn_risk=None if s.churn_risk is None else float(s.churn_risk),
                churn_band=s.churn_band,
                outcomes={name: float(p) for name, p in s.outcomes.items()},
                why_now=[WhyNowOut.of(w) for w in s.why_now],
                action=action,
            )
        )
    versions = dict(svc.holder.current.versions) if svc.holder.ready else {}
    missing = dict(svc.scorer.models.missing) if svc.holder.ready else {}
    horizons = svc.scorer.models.horizon_days if svc.holder.ready else {}
    return WorklistResponse(
        rep_id=rep_id,
        as_of=now.to_pydatetime(),
        accounts=len(scored),
        items=items,
        model_versions=versions,
        missing=missing,
        horizon_days=horizons,
        value_unit=svc.settings.value_unit,
    )


def _score_accounts(
    svc: Services, rep_id: str, now: pd.Timestamp
) -> tuple[list[AccountScore], dict[str, AccountActivity]]:
    """The greedy best action (k=1, no exploration) of each of the rep's accounts at
    ``now``, from one read of the store (the states computed on the way are stored), and
    each account's activity as read (names included) by account id."""
    scoring_key = svc.scorer.scoring_key()  # raises ModelLoadError (503) without models
    window = pd.Timedelta(days=svc.arbitration.eligibility.dismissed_recently_days)
    rows = svc.store.rep_accounts(
        rep_id,
        scoring_key=scoring_key,
        scored_since=now - pd.Timedelta(seconds=svc.settings.score_max_age_s),
        served_since=now - SERVED_WINDOW,
        dismissed_since=now - window,
    )
    known = [
        KnownAccount(
            account_id=r.account_id,
            data_version=r.activity.data_version,
            served=served_recent(r.activity),
            dismissed=dismissed_recent(r.activity),
            stored=r.stored,
        )
        for r in rows
    ]
    scored, computed = svc.scorer.score_known(
        known, svc.store.accounts_data, now, k=1, rng=svc.rng, explore=False
    )
    svc.store.save_scores(computed)
    return scored, {r.account_id: r.activity for r in rows}
