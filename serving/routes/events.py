"""``POST /v1/events``: ingest touchpoints, idempotent by event_id, with per-record errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from serving.auth import require_scope
from serving.routes import Services, services
from serving.schemas import EventsRequest, EventsResponse, RecordErrorOut
from serving.store import ApiKey

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    response_model=EventsResponse,
    summary="Ingest touchpoints",
    responses={
        401: {"description": "No or invalid API key."},
        403: {"description": "The key lacks scope events:write."},
        413: {"description": "Too many records or too large a body."},
    },
)
def post_events(
    body: EventsRequest,
    svc: Annotated[Services, Depends(services)],
    _key: Annotated[ApiKey, Depends(require_scope("events:write"))],
) -> EventsResponse:
    """Store a batch of touchpoint records.

    Idempotent by ``event_id``: a replayed record is counted as a duplicate and stores
    nothing. Each invalid record is answered with its index, field and reason; the valid
    records of the same batch are stored. Accounts and contacts the service does not know
    yet are created from the records (``account`` / ``contact`` objects describe them). An
    account that gets new events is scored afresh on its next request.
    """
    limit = svc.settings.max_events_per_request
    if len(body.events) > limit:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=(
                f"{len(body.events):,} events in one request; at most {limit:,} are accepted "
                "(NBA_MAX_EVENTS_PER_REQUEST): split the batch"
            ),
        )
    result = svc.store.ingest_events(body.events, now=svc.now())
    metrics = svc.metrics
    metrics.events.labels("accepted").inc(result.accepted)
    metrics.events.labels("duplicate").inc(result.duplicates)
    metrics.events.labels("rejected").inc(len(result.rejected))
    return EventsResponse(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[
            RecordErrorOut(index=e.index, field=e.field, reason=e.reason) for e in result.rejected
        ],
    )
