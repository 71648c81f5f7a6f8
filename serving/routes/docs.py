"""``GET /docs``: the interactive API documentation (Swagger UI), with no internet needed.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline script: a
blank page without internet, and a page a strict Content-Security-Policy would block. This
page is the same Swagger UI from the ``fastapi-offline`` package's copy of its assets
(``GET /docs/assets/{name}``), started by ``serving/static/docs.js``, under the pages'
policy (scripts, styles and API calls from this origin only, no inline script).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.responses import HTMLResponse

from serving.routes import Services, services
from serving.routes.pages import STATIC_MAX_AGE_S, page_headers, static_text

router = APIRouter(tags=["pages"])

# The Swagger UI files the page loads, from the package; any other name answers 404.
DOCS_ASSET_TYPES: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
DOCS_ASSET_PACKAGE = "fastapi_offline"


@lru_cache(maxsize=len(DOCS_ASSET_TYPES))
def docs_asset(name: str) -> bytes:
    """The bytes of Swagger UI's asset ``name`` as the ``fastapi-offline`` package ships it
    (read once per process)."""
    return (resources.files(DOCS_ASSET_PACKAGE) / "static" / name).read_bytes()


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs_page(svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, every asset served by this service."""
    return HTMLResponse(static_text("docs.html"), headers=page_headers(svc.settings))


@router.get("/docs/assets/{name}", include_in_schema=False)
def docs_asset_file(name: str) -> Response:
    """One of Swagger UI's files; 404 for any other name."""
    media_type = DOCS_ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no docs asset {name!r}")
    return Response(
        docs_asset(name),
        media_type=media_type,
        headers={
            "Cache-Control": f"public, max-age={STATIC_MAX_AGE_S}",
            "X-Content-Type-Options": "nosniff",
        },
    )
