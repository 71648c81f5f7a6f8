"""``GET /v1/accounts/{account_id}/recommendations`` and ``POST /v1/recommendations``: an
account's phase, churn risk and ranked next actions with their reasons, every served action
logged with its propensity under the policy that served it.

The warm path (features and predictions cached for the account's current data) runs on the
event loop: its one read transaction is a sub-millisecond local query (the served actions
are logged in the background, see ``serving.store.served_log``) and arbitration is a few
hundred microseconds of numpy, so handing it to a worker thread and back would cost more
than the work. What may take longer (features for an account whose data changed or
whose cache entry expired) runs in a worker thread, at most ``COLD_PATH_THREADS`` at a time
per process: the work is CPU-bound under one GIL, so more threads only slow every request
down, the warm ones on the event loop included. The answer is serialized by its pydantic
model straight to JSON bytes, once.

An answer whose client has gone (a timeout, a closed tab) while it was computed is not
logged: its actions were never served, and logging them would put decisions nobody saw into
the off-policy log. The check comes last before the actions are logged; a client that leaves
after that had its answer sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import partial
from typing import Annotated

import anyio.lowlevel
import anyio.to_thread
import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from models.arbitration import Recent, servable_json
from models.contract import NEXT_CONTENT
from models.explain import describe_changes
from serving.auth import check_account_access, require_scope
from serving.routes import Services, services
from serving.schemas import (
    AccountIdPath,
    ActionOut,
    ChangesOut,
    ContactIdQuery,
    HeldBackOut,
    Id,
    ReasonOut,
    RecommendationsRequest,
    RecommendationsResponse,
    WhyNowOut,
)
from serving.scoring import AccountScore, ScoredAction
from serving.scoring.incremental import account_source
from serving.store import AccountActivity, ApiKey, NewRecommendation

router = APIRouter(prefix="/v1", tags=["recommendations"])

# The contact policy's caps count actions served in the last week.
SERVED_WINDOW = pd.Timedelta(days=7)
# The status recorded (in the metrics) for an answer whose client had gone: nobody reads it.
CLIENT_CLOSED_REQUEST = 499
_ERRORS = {
    401: {"description": "No or invalid API key."},
    403: {
        "description": "The key lacks scope recommendations:read, or is bound to a rep "
        "(nba keys create --rep) who does not own the account."
    },
    422: {"description": "An unknown role or channel, or k out of range."},
    503: {"description": "No models are loaded yet (see /ready)."},
}


def account_activity(svc: Services, account_id: str, now: pd.Timestamp) -> AccountActivity | None:
    """The account's data version, its actions served in the last week (what arbitration's
    contact caps count) and its dismissals inside the config's window; None if unknown."""
    window = pd.Timedelta(days=svc.arbitration.eligibility.dismissed_recently_days)
    return svc.store.account_activity(
        account_id, served_since=now - SERVED_WINDOW, dismissed_since=now - window
    )


def served_recent(activity: AccountActivity) -> Recent:
    """The served actions as arbitration reads them (a null contact is account-level)."""
    served = activity.served
    return Recent(
        content_id=[content for _, content, _ in served],
        ts_ns=np.fromiter((at for _, _, at in served), np.int64, len(served)),
        contact_id=[contact for contact, _, _ in served],
    )


def dismissed_recent(activity: AccountActivity) -> Recent:
    """The dismissed items as arbitration reads them."""
    dismissed = activity.dismissed
    return Recent(
        content_id=[content for content, _ in dismissed],
        ts_ns=np.fromiter((at for _, at in dismissed), np.int64, len(dismissed)),
    )


def check_filters(svc: Services, role: str | None, channel: str | None) -> None:
    """422 for a role or channel the taxonomy does not name."""
    for name, value, known in (
        ("role", role, svc.taxonomy.role_names),
        ("channel", channel, svc.taxonomy.channel_names),
    ):
        if value is not None and value not in known:
            raise HTTPException(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"{name} {value!r} is unknown; expected one of: {', '.join(known)}",
            )


def score(
    svc: Services,
    account_id: str,
    now: pd.Timestamp,
    *,
    k: int,
    contact_id: str | None = None,
    role: str | None = None,
    channel: str | None = None,
    explore: bool | None = None,
    activity: AccountActivity | None = None,
) -> AccountScore:
    """Score one account at ``now`` with its served/dismissed history (cold start when the
    store does not know it). ``activity`` is :func:`account_activity` if the caller has
    read it already. Raises ModelLoadError when no models are loaded, ScoringError for a bad
    request (the app's NbaError handler answers them)."""
    if activity is None:
        activity = account_activity(svc, account_id, now)
    served: Recent | None = None
    dismissed: Recent | None = None
    online = None
    if svc.posteriors is not None:
        online = svc.posteriors.current(svc.scorer.models.versions.get(NEXT_CONTENT, ""))
    if activity is not None:
        served = served_recent(activity)
        dismissed = dismissed_recent(activity)
    return svc.scorer.score_account(
        # the feature state is read only when the scorer's cache cannot answer
        None
        if activity is None
        else partial(account_source, svc.store, account_id, now, svc.taxonomy),
        account_id,
        now,
        k=k,
        contact_id=contact_id,
        role=role,
        channel=channel,
        rng=svc.rng,
        served=served,
        dismissed=dismissed,
        explore=explore,
        data_version=None if activity is None else activity.data_version,
        online=online,
        challenger_share=svc.settings.challenger_share,
    )


def log_actions(
    svc: Services, result: AccountScore, actions: tuple[ScoredAction, ...], now: pd.Timestamp
) -> tuple[str, list[str]]:
    """Log ``actions`` as served (one request id); returns (request id, recommendation ids)."""
    request_id = uuid.uuid4().hex
    # the top-slot decision's servable actions, for judging other policies on the log
    servable = servable_json(result.servable) if result.servable else None
    ids = svc.served_log.log(
        [
            NewRecommendation(
                request_id=request_id,
                account_id=result.account_id,
                content_id=s.action.content_id,
                rank=s.action.rank,
                expected_value=s.action.expected_value,
                propensity=s.action.propensity,
                policy=result.policy,
                model_versions=result.versions,
                contact_id=s.action.contact_id or None,
                kind="impression" if s.action.repeat else "decision",
                segment=result.segment,
                p_response=s.action.p_response,
                servable=servable if s.action.rank == 1 and not s.action.repeat else None,
            )
            for s in actions
        ],
        served_at=now,
    )
    if actions:
        svc.metrics.recommendations.labels(result.policy).inc(len(actions))
    return request_id, ids


def action_out(
    scored: ScoredAction, recommendation_id: str, contact_names: Mapping[str, str]
) -> ActionOut:
    """An action as answered, its contact's name from ``contact_names`` (contact_id ->
    name; a contact without one answers null)."""
    a = scored.action
    return ActionOut(
        recommendation_id=recommendation_id,
        rank=a.rank,
        content_id=a.content_id,
        title=a.title,
        content_type=a.content_type,
        channel=a.channel,
        contact_id=a.contact_id or None,
        role=a.role or None,
        contact_name=contact_names.get(a.contact_id) if a.contact_id else None,
        expected_value=float(a.expected_value),
        p_response=float(a.p_response),
        propensity=float(a.propensity),
        explored=bool(a.explored),
        kind="impression" if a.repeat else "decision",
        reasons=[ReasonOut.of(r) for r in scored.reasons],
    )


def score_request(
    svc: Services,
    request: RecommendationsRequest,
    now: pd.Timestamp,
    activity: AccountActivity | None,
) -> AccountScore:
    """The account's score for one request at ``now`` (nothing logged yet). ``activity`` as
    for :func:`score`."""
    check_filters(svc, request.role, request.channel)
    result = score(
        svc,
        request.account_id,
        now,
        k=request.k,
        contact_id=request.contact_id,
        role=request.role,
        channel=request.channel,
        activity=activity,
    )
    if result.cold_start:
        svc.metrics.cold_starts.inc()
    return result


def since_last_visit(activity: AccountActivity | None) -> ChangesOut | None:
    """The account's touchpoints since actions were last recommended for it (None when none
    ever were, or the account is unknown)."""
    if activity is None or activity.last_served_ns is None:
        return None
    return ChangesOut(
        since=pd.Timestamp(activity.last_served_ns, tz="UTC").to_pydatetime(),
        touchpoints=sum(activity.events_since.values()),
        text=describe_changes(activity.events_since),
    )


def recommend(
    svc: Services, result: AccountScore, now: pd.Timestamp, activity: AccountActivity | None
) -> RecommendationsResponse:
    """The full answer for a scored request at ``now``, its actions logged; names and what
    changed since the last visit come from the account's ``activity`` (None: unknown)."""
    request_id, ids = log_actions(svc, result, result.actions, now)
    contact_names = {} if activity is None else activity.contact_names
    return RecommendationsResponse(
        request_id=request_id,
        account_id=result.account_id,
        account_name=None if activity is None else activity.name,
        as_of=result.as_of.to_pydatetime(),
        known=result.known,
        cold_start=result.cold_start,
        phase=result.phase,
        phase_probabilities={p: float(v) for p, v in result.phase_proba.items()},
        phase_reasons=[ReasonOut.of(r) for r in result.phase_reasons],
        churn_risk=None if result.churn_risk is None else float(result.churn_risk),
        churn_band=result.churn_band,
        churn_reasons=[ReasonOut.of(r) for r in result.churn_reasons],
        outcomes={name: float(p) for name, p in result.outcomes.items()},
        horizon_days=svc.scorer.models.horizon_days,
        value_unit=svc.settings.value_unit,
        since_last_visit=since_last_visit(activity),
        why_now=[WhyNowOut.of(w) for w in result.why_now],
        actions=[
            action_out(s, rid, contact_names) for s, rid in zip(result.actions, ids, strict=True)
        ],
        held_back=[
            HeldBackOut(
                content_id=h.content_id,
                title=h.title,
                content_type=h.content_type,
                contact_id=h.contact_id or None,
                role=h.role or None,
                rule=h.rule,
                expected_value=float(h.expected_value),
            )
            for h in result.held_back
        ],
        policy=result.policy,
        explored=result.explored,
        model_versions=dict(result.versions),
        missing=dict(result.missing),
    )


async def client_gone(http: Request) -> bool:
    """Whether the client of ``http`` has disconnected (without waiting for anything)."""
    # One pass of the event loop first: a request read together with its client's close (a
    # client that gave up while the request queued) runs before the server handles the close.
    await anyio.lowlevel.checkpoint()
    return await http.is_disconnected()


async def respond(
    svc: Services, request: RecommendationsRequest, key: ApiKey, http: Request
) -> Response:
    """:func:`recommend` as a JSON response: scored on the event loop when the account is
    warm or unknown, in the thread pool otherwise (see the module docstring), and logged
    only if the client is still there. 403 when ``key`` is bound to a rep who does not own
    the account."""
    now = svc.now()
    activity = account_activity(svc, request.account_id, now)
    if activity is not None:
        check_account_access(key, request.account_id, activity.owner_rep_id)
    if activity is None or svc.scorer.is_warm(request.account_id, activity.data_version, now):
        result = score_request(svc, request, now, activity)
    else:
        result = await anyio.to_thread.run_sync(
            score_request, svc, request, now, activity, limiter=svc.cold_limiter
        )
    if await client_gone(http):
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    answer = recommend(svc, result, now, activity)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get(
    "/accounts/{account_id}/recommendations",
    response_model=RecommendationsResponse,
    summary="Next best actions for an account",
    responses=_ERRORS,  # type: ignore[arg-type]
)
async def get_recommendations(
    account_id: AccountIdPath,
    http: Request,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("recommendations:read"))],
    k: Annotated[int, Query(ge=1, le=50, description="Actions to return.")] = 5,
    contact_id: ContactIdQuery = None,
    role: Annotated[Id | None, Query(description="Only contacts in this role.")] = None,
    channel: Annotated[Id | None, Query(description="Only actions on this channel.")] = None,
) -> Response:
    """Phase probabilities, churn risk with its band, the top-k next actions (content and
    sales/service plays) with expected value, propensity and reason codes, the actions held
    back and why, and the model versions used. An unknown account gets a cold-start answer
    (the phase prior and popular content for that phase) with ``cold_start: true``. Every
    action returned is logged under its ``recommendation_id``."""
    return await respond(
        svc,
        RecommendationsRequest(
            account_id=account_id, k=k, contact_id=contact_id, role=role, channel=channel
        ),
        key,
        http,
    )


@router.post(
    "/recommendations",
    response_model=RecommendationsResponse,
    summary="Next best actions for an account (request body)",
    responses=_ERRORS,  # type: ignore[arg-type]
)
async def post_recommendations(
    body: RecommendationsRequest,
    http: Request,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("recommendations:read"))],
) -> Response:
    """The same answer as ``GET /v1/accounts/{account_id}/recommendations``."""
    return await respond(svc, body, key, http)
