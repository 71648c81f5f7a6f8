"""Journey insights in the service: the page ``GET /insights`` and the JSON behind it,
``GET /v1/insights?from=&to=&every=``, computed from the store by ``features.insights`` as
``nba insights --store`` computes them (the same numbers).

The page authenticates as the worklist does: the key travels in the URL fragment
(``/insights#key=<key>``) and the script sends it as ``Authorization: Bearer``. The API needs
scope ``insights:read``; insights cover every account, so a key bound to a rep (which reads
only its own accounts) is refused. A report reads the whole store, so each worker keeps an
answer for :data:`CACHE_TTL_S` seconds per period and computes at most one at a time, off
the event loop, reading only the events the period needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from features.insights import compute_insights, resolve_period
from features.insights.events import LIFECYCLE_TYPES
from features.load import read_tables
from features.schema import RESPONSE_WINDOW_DAYS
from features.timestamps import from_ns
from serving.auth import bound_rep, require_scope
from serving.routes import Services, services
from serving.routes.pages import render_page
from serving.store import ApiKey
from serving.store.contract import EventWindow

router = APIRouter(tags=["insights"])

# How long a worker reuses a computed report (the store changes with every event, but a
# report over months does not move in minutes).
CACHE_TTL_S = 300.0
CACHE_ENTRIES = 16


@dataclass
class _Cache:
    """Reports by (from, to, every) with the time they were computed; one computation at a
    time (each reads the whole store)."""

    entries: dict[tuple[str | None, str | None, str], tuple[float, dict[str, Any]]] = field(
        default_factory=dict
    )
    lock: anyio.Lock = field(default_factory=anyio.Lock)


def _cache(request: Request) -> _Cache:
    state = request.app.state
    if not hasattr(state, "insights_cache"):
        state.insights_cache = _Cache()
    cache: _Cache = state.insights_cache
    return cache


@router.get("/insights", response_class=HTMLResponse, include_in_schema=False)
def insights_page(svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    """The insights page (its script reads the key from ``#key=...``)."""
    return render_page("insights.html", svc)


@router.get(
    "/v1/insights",
    summary="Journey KPIs, content gaps and the journey map over a period",
    responses={
        401: {"description": "No or invalid API key."},
        403: {"description": "The key lacks scope insights:read, or is bound to a rep."},
        422: {"description": "from or to is not a date, or from is not before to."},
    },
)
async def get_insights(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("insights:read"))],
    start: Annotated[
        str | None,
        Query(alias="from", description="First day (UTC); default 90 days before `to`."),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="Day after the period (UTC); default the day after the latest event.",
        ),
    ] = None,
    every: Annotated[str, Query(pattern="^(week|month)$", description="Trend buckets.")] = "month",
) -> dict[str, Any]:
    """The store's insights over ``[from, to)`` (``features.insights``): ``kpis`` (engagement,
    revenue, traffic, each with the previous period's value and a rate's 95 % interval),
    ``trend`` per week or month, ``by`` phase, channel, content item and role, ``content_gaps``
    (phase x role cells with their status) and ``journey`` (per phase and the phase changes),
    with ``notes`` on what the data could not give."""
    if bound_rep(key) is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"API key {key.name!r} is bound to rep {bound_rep(key)!r}: insights cover "
            "every account; use a key with insights:read and no rep",
        )
    cache = _cache(request)
    wanted = (start, end, every)
    async with cache.lock:
        hit = cache.entries.get(wanted)
        if hit is not None and time.monotonic() - hit[0] < CACHE_TTL_S:
            return hit[1]
        answer = await anyio.to_thread.run_sync(_compute, svc, start, end, every)
        if len(cache.entries) >= CACHE_ENTRIES:
            cache.entries.clear()
        cache.entries[wanted] = (time.monotonic(), answer)
    return answer


def _compute(svc: Services, start: str | None, end: str | None, every: str) -> dict[str, Any]:
    """The store's insights over the period, reading (as ``nba export`` reads the store)
    only the events they count: those from the previous period's start to the period's end
    plus the response window, and every purchase, renewal and churn."""
    latest = svc.store.latest_touchpoint_ns()
    last_event = from_ns(latest) if latest is not None else None
    period = resolve_period(start, end, every=every, last_event=last_event)
    until = period.end + pd.Timedelta(RESPONSE_WINDOW_DAYS, "D")
    window = EventWindow(period.previous.start.value, until.value, LIFECYCLE_TYPES)
    tables = svc.store.contract_tables(window).tables
    data = read_tables(tables, svc.taxonomy, attributes=svc.store.attributes)
    return compute_insights(data, svc.taxonomy, period).to_dict()
