"""``/docs`` works without internet: the page references only this service's own assets,
each answers 200 with its type, and the page runs under the pages' strict CSP (no inline
script, scripts from this origin only)."""

from __future__ import annotations

import re

from tests.utils.api import Api


def _references(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def test_docs_reference_only_local_assets_and_they_are_served(api: Api) -> None:
    response = api.client.get("/docs")
    assert response.status_code == 200
    page = response.text
    refs = _references(page)
    assert any(r.endswith("swagger-ui-bundle.js") for r in refs)
    assert any(r.endswith("swagger-ui.css") for r in refs)
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref  # no CDN, no other host
        asset = api.client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 0, ref
    bundle = api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    # the starter script points Swagger UI at this service's OpenAPI document
    assert "/openapi.json" in api.client.get("/static/docs.js").text
    assert api.client.get("/openapi.json").status_code == 200


def test_docs_run_under_the_strict_csp_with_no_inline_script(api: Api) -> None:
    response = api.client.get("/docs")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    # every <script> has a src: nothing inline for the policy to block
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) == []


def test_other_docs_asset_names_and_the_cdn_pages_answer_404(api: Api) -> None:
    assert api.client.get("/docs/assets/../../core.py").status_code == 404
    assert api.client.get("/docs/assets/index.html").status_code == 404
    assert api.client.get("/redoc").status_code == 404
