"""``POST /v1/feedback``: what happened to a served recommendation."""

from __future__ import annotations

import time
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, status

from serving.auth import bound_rep, require_scope
from serving.routes import Services, services
from serving.schemas import FeedbackRequest, FeedbackResponse
from serving.store import REWARDING_OUTCOMES, ApiKey, UnknownRecommendationError

router = APIRouter(prefix="/v1", tags=["feedback"])

# Served actions reach the store within about one flush interval of the served log (see
# serving.store.served_log). With its journal, an id not stored yet is written from the
# journal that holds it at once; without one (a served log built without a directory),
# feedback waits this many intervals for another worker's batch before answering 404.
UNKNOWN_ID_RETRIES = 3


def record(
    svc: Services, body: FeedbackRequest, now: pd.Timestamp, rep_id: str | None = None
) -> int:
    """Store the feedback; returns its id. An id the store does not hold yet is written
    first from wherever it waits: this worker's queue, or any worker's journal (a worker
    killed before its batch was written included). ``rep_id``: the rep the key is bound to,
    whose accounts alone it may give feedback on."""
    served_log = svc.served_log
    retries = UNKNOWN_ID_RETRIES if served_log.background else 0
    recovered = False
    while True:
        if served_log.holds(body.recommendation_id):
            served_log.flush()
        try:
            return svc.store.record_feedback(
                body.recommendation_id, body.outcome, at=now, note=body.note, rep_id=rep_id
            )
        except UnknownRecommendationError:
            if not recovered:
                # Writes the id if it waits in a queue or journal; if not, look once more
                # anyway: a replay racing this one may have stored it and removed its journal
                # between our look in the store and our look in the journals.
                served_log.recover(body.recommendation_id)
                recovered = True
                continue
            if retries == 0 or served_log.journal_dir is not None:
                raise  # a journal holds every id served and not stored: no need to wait
            retries -= 1
            time.sleep(served_log.flush_interval_s)


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    status_code=status.HTTP_201_CREATED,
    summary="Report what happened to a recommendation",
    responses={
        401: {"description": "No or invalid API key."},
        403: {
            "description": "The key lacks scope feedback:write, or is bound to a rep who "
            "does not own the recommendation's account."
        },
        404: {"description": "No recommendation with this id was served."},
        422: {"description": "An outcome other than shown, accepted, dismissed, converted."},
    },
)
def post_feedback(
    body: FeedbackRequest,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("feedback:write"))],
) -> FeedbackResponse:
    """Store an outcome (shown, accepted, dismissed, converted) for a recommendation id a
    recommendations answer returned. A dismissed item is not offered to the account again
    for the arbitration config's ``dismissed_recently_days``. A key bound to a rep gives
    feedback only on recommendations for that rep's accounts (403 otherwise)."""
    now: pd.Timestamp = svc.now()
    feedback_id = record(svc, body, now, bound_rep(key))
    if svc.posteriors is not None and body.outcome in REWARDING_OUTCOMES:
        svc.posteriors.wake()  # it may have rewarded a decision: read the counts again
    svc.metrics.feedback.labels(body.outcome).inc()
    return FeedbackResponse(
        feedback_id=feedback_id, recommendation_id=body.recommendation_id, outcome=body.outcome
    )
