"""The pages people use every day, served by the API itself with no build step: the CRM
account widget (``GET /widget/accounts/{account_id}``), the sales rep's worklist
(``GET /reps/{rep_id}``), their static assets (``GET /static/{name}``) and the small
read-only API the widget needs besides recommendations and feedback:
``GET /v1/accounts/{account_id}/touchpoints``.

How the pages authenticate: the HTML, CSS and JS need no key. The CRM embeds the widget as
``<iframe src="https://nba.example/widget/accounts/A00017#key=<widget key>">``: the key
travels in the URL *fragment*, which browsers never send to servers (so it is in no access
log or Referer header); the page's script reads it and sends it as ``Authorization: Bearer``
on its own ``fetch`` calls. A widget key should hold only ``recommendations:read`` and
``feedback:write`` and no rep (without ``worklists:read`` it reads no rep worklist, see
``serving.routes.reps``). A rep opens ``/reps/<rep_id>#key=<rep key>`` with a key bound to
that rep (``nba keys create --rep <rep_id>``); each row opens the account widget with the
same key.

Every page answers with a Content-Security-Policy that allows only this origin's scripts,
styles and API (no inline script), and ``frame-ancestors`` limited to this origin and the
CRM origins in ``NBA_CRM_ORIGINS`` (``'self'`` only when unset).
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from serving.auth import check_account_access, require_scope
from serving.routes import Services, services
from serving.schemas import AccountIdPath, RepIdPath
from serving.settings import Settings
from serving.store import ApiKey

router = APIRouter(tags=["pages"])

# The assets the pages load; anything else under /static answers 404 (no directory walk).
STATIC_TYPES: dict[str, str] = {
    "widget.js": "text/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
    "worklist.js": "text/javascript; charset=utf-8",
    "insights.js": "text/javascript; charset=utf-8",
    "insights.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
}
# Assets are small and change only with a deployment; a short max-age keeps a CRM page with
# many widget frames from refetching them while a release still reaches everyone quickly.
STATIC_MAX_AGE_S = 300
MAX_TOUCHPOINTS = 100


class TouchpointOut(BaseModel):
    """One touchpoint of an account's timeline."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    ts: str = Field(description="When it happened (ISO 8601, UTC).")
    channel: str
    event_type: str
    content_id: str | None
    content_title: str | None
    contact_id: str | None
    role: str | None = Field(description="The contact's buying-center role, if known.")
    contact_name: str | None = Field(default=None, description="The contact's name, if known.")


class TouchpointsResponse(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "account_id": "A00017",
                    "known": True,
                    "touchpoints": [
                        {
                            "event_id": "E-2024-05-01-0001",
                            "ts": "2024-05-01T12:00:00+00:00",
                            "channel": "webinar",
                            "event_type": "attend",
                            "content_id": "C040",
                            "content_title": "Live demo",
                            "contact_id": "P00017-2",
                            "role": "it",
                            "contact_name": "Jana Weber",
                        }
                    ],
                }
            ]
        },
    )

    account_id: str
    known: bool = Field(description="False for an account the store does not hold.")
    touchpoints: list[TouchpointOut] = Field(description="Newest first.")


@router.get(
    "/v1/accounts/{account_id}/touchpoints",
    response_model=TouchpointsResponse,
    tags=["accounts"],
    summary="An account's latest touchpoints",
    responses={
        401: {"description": "No or invalid API key."},
        403: {
            "description": "The key lacks scope recommendations:read, or belongs to another rep."
        },
    },
)
def get_touchpoints(
    account_id: AccountIdPath,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[ApiKey, Depends(require_scope("recommendations:read"))],
    limit: Annotated[int, Query(ge=1, le=MAX_TOUCHPOINTS, description="Touchpoints.")] = 10,
) -> TouchpointsResponse:
    """The account's latest ``limit`` touchpoints, newest first, with the content's title
    and the contact's role. An unknown account answers ``known: false`` and no touchpoints
    (the widget shows it as a cold start), not 404. A key bound to a rep reads only that
    rep's accounts."""
    data = svc.store.account_data(account_id)
    if data is None:
        return TouchpointsResponse(account_id=account_id, known=False, touchpoints=[])
    owners = data.accounts["owner_rep_id"].dropna().astype(str).tolist()
    check_account_access(key, account_id, owners[0] if owners else None)
    return TouchpointsResponse(
        account_id=account_id,
        known=True,
        touchpoints=latest_touchpoints(data.touchpoints, data.contacts, data.content, limit),
    )


def latest_touchpoints(
    touchpoints: pd.DataFrame, contacts: pd.DataFrame, content: pd.DataFrame, limit: int
) -> list[TouchpointOut]:
    """The newest ``limit`` rows of ``touchpoints`` (one account's, canonical dtypes), with
    the contact's role and name and the content's title joined on (None where unknown)."""
    latest = touchpoints.sort_values(["ts", "event_id"], ascending=False).head(limit)
    by_id = contacts.set_index("contact_id")
    roles = by_id["role"].astype(str)
    names = by_id["name"].astype(object)
    titles = content.set_index("content_id")["title"].astype(str)
    frame = pd.DataFrame(
        {
            "event_id": latest["event_id"].astype(str),
            "ts": latest["ts"].map(lambda t: t.isoformat()),
            "channel": latest["channel"].astype(str),
            "event_type": latest["event_type"].astype(str),
            "content_id": latest["content_id"].astype(object),
            "content_title": latest["content_id"].map(titles).astype(object),
            "contact_id": latest["contact_id"].astype(object),
            "role": latest["contact_id"].map(roles).astype(object),
            "contact_name": latest["contact_id"].map(names).astype(object),
        }
    )
    frame = frame.astype(object).where(frame.notna(), None)
    return [TouchpointOut.model_validate(row) for row in frame.to_dict("records")]


# -- pages ------------------------------------------------------------------------------------


def frame_ancestors(settings: Settings) -> str:
    """The CSP ``frame-ancestors`` sources: this origin and the configured CRM origins."""
    return " ".join(("'self'", *settings.crm_origins))


def page_headers(settings: Settings) -> dict[str, str]:
    """Security headers of every page: scripts, styles and API calls from this origin only
    (no inline script, so an injected string cannot run), framing only by the CRM."""
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors(settings)}",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@lru_cache(maxsize=16)
def static_text(name: str) -> str:
    """The text of the shipped asset ``serving/static/<name>`` (read once per process)."""
    return (resources.files("serving") / "static" / name).read_text(encoding="utf-8")


def page_config(svc: Services) -> dict[str, Any]:
    """What the page scripts need to render names for people: the phases in journey order
    with labels, the labels of channels, event types, roles and content types, and the churn
    band thresholds. Taxonomies are data, so the pages get them from the server."""
    taxonomy = svc.taxonomy
    phases = taxonomy.phase_models[taxonomy.default_phase_model].phases
    bands = svc.arbitration.churn_lever.bands
    return {
        "phases": [
            {"name": p.name, "label": p.label, "description": p.description} for p in phases
        ],
        "channels": {c.name: c.label for c in taxonomy.channels},
        "eventTypes": {e.name: e.label for e in taxonomy.event_types},
        "roles": {r.name: r.label for r in taxonomy.roles},
        "contentTypes": {c.name: c.label for c in taxonomy.content_types},
        "bands": {"medium": float(bands.medium), "high": float(bands.high)},
        "valueUnit": svc.settings.value_unit,
    }


def render_page(template: str, svc: Services, **ids: str) -> HTMLResponse:
    """``serving/static/<template>`` with ``{{config}}`` and ``{{<id>}}`` placeholders
    filled in (HTML-escaped: ids come from the URL)."""
    text = static_text(template)
    text = text.replace("{{config}}", html.escape(json.dumps(page_config(svc)), quote=True))
    for name, value in ids.items():
        text = text.replace("{{" + name + "}}", html.escape(value, quote=True))
    return HTMLResponse(text, headers=page_headers(svc.settings))


@router.get("/widget/accounts/{account_id}", response_class=HTMLResponse, include_in_schema=False)
def widget_page(
    account_id: AccountIdPath, svc: Annotated[Services, Depends(services)]
) -> HTMLResponse:
    """The CRM account widget (its script reads the key from ``#key=...``)."""
    return render_page("widget.html", svc, account_id=account_id)


@router.get("/reps/{rep_id}", response_class=HTMLResponse, include_in_schema=False)
def worklist_page(rep_id: RepIdPath, svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    """The sales rep's worklist (its script reads the key from ``#key=...``)."""
    return render_page("worklist.html", svc, rep_id=rep_id)


@router.get("/static/{name}", include_in_schema=False)
def static_asset(name: str) -> Response:
    """One of the pages' scripts or style sheets; 404 for any other name."""
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static asset {name!r}")
    return Response(
        static_text(name),
        media_type=media_type,
        headers={
            "Cache-Control": f"public, max-age={STATIC_MAX_AGE_S}",
            "X-Content-Type-Options": "nosniff",
        },
    )
