"""``GET /v1/reps/{rep_id}/actions``: a sales rep's worklist — the rep's accounts ranked by
the expected value of their best next action."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request, Response

from serving.auth import check_worklist_access, require_scope
from serving.routes import Services, services
from serving.routes.recommendations import (
    CLIENT_CLOSED_REQUEST,
    action_out,
    client_gone,
    log_actions,
    score,
)
from serving.schemas import WorklistItem, WorklistResponse
from serving.scoring import AccountScore
from serving.store import ApiKey

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
            "description": "The key lacks scope recommendations:read, is bound to another "
            "rep (named rep:<other rep>) or is a widget key (named widget:...)."
        },
        503: {"description": "No models are loaded yet (see /ready)."},
    },
)
def get_rep_actions(
    rep_id: str,
    http: Request,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("recommendations:read"))],
    limit: Annotated[int, Query(ge=1, le=500, description="Accounts to return.")] = 50,
) -> WorklistResponse | Response:
    """The accounts owned by ``rep_id``, best next action first: each with its phase,
    churn risk and the action with its reasons. Accounts without an action that passes the
    rules come last, riskiest first. A rep without accounts gets an empty list.

    Each account is scored through the same per-account cache as the recommendations
    route, so a rep's second look costs arbitration only. The actions returned are logged
    (propensity 1: the worklist always shows the greedy best).

    A rep sees only their own accounts: a key named ``rep:<rep_id>`` reads only that rep's
    worklist, a widget key (``widget:...``) none (403); admin and other service keys any."""
    check_worklist_access(key, rep_id)
    now = svc.now()
    account_ids = svc.store.accounts_of_rep(rep_id)
    scored: list[AccountScore] = [
        score(svc, account_id, now, k=1, explore=False) for account_id in account_ids
    ]

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
        if s.actions:
            first = s.actions[0]
            certain = replace(first, action=replace(first.action, propensity=1.0))
            logged = replace(s, policy=s.policy + WORKLIST_POLICY_SUFFIX)
            _, ids = log_actions(svc, logged, (certain,), now)
            action = action_out(certain, ids[0])
        items.append(
            WorklistItem(
                account_id=s.account_id,
                phase=s.phase,
                phase_probability=float(s.phase_proba[s.phase]),
                churn_risk=None if s.churn_risk is None else float(s.churn_risk),
                churn_band=s.churn_band,
                action=action,
            )
        )
    versions = dict(svc.holder.current.versions) if svc.holder.ready else {}
    return WorklistResponse(
        rep_id=rep_id,
        as_of=now.to_pydatetime(),
        accounts=len(account_ids),
        items=items,
        model_versions=versions,
    )
