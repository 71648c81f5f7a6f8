"""API keys and scopes on every /v1 route (401 without or with an invalid key, 403 with the
wrong scope, 2xx with the right one or admin), key revocation, and CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.auth import KeyVerifier
from serving.settings import Settings
from serving.store import API_KEY_SCOPES, NewRecommendation
from tests.utils.api import Api, open_api
from tests.utils.registry import TrainedRegistry


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, registry: TrainedRegistry) -> Iterator[Api]:
    with open_api("sqlite", tmp_path_factory.mktemp("auth"), registry) as opened:
        yield opened


@pytest.fixture(scope="module")
def recommendation_id(api: Api) -> str:
    [rec_id] = api.store.log_recommendations(
        [
            NewRecommendation(
                request_id="r-auth",
                account_id=api.account_ids[0],
                content_id="C027",
                rank=1,
                expected_value=0.1,
                propensity=1.0,
                policy="test",
            )
        ]
    )
    return rec_id


# (method, path, required scope, expected success status, body)
Route = tuple[str, str, str, int, Callable[[Api, str], dict[str, Any] | None]]
ROUTES: list[Route] = [
    (
        "POST",
        "/v1/events",
        "events:write",
        200,
        lambda api, _: {
            "events": [
                {
                    "event_id": "E-auth-1",
                    "account_id": api.account_ids[0],
                    "ts": "2025-01-02T00:00:00Z",
                    "channel": "website",
                    "event_type": "view",
                }
            ]
        },
    ),
    (
        "GET",
        "/v1/accounts/{account}/recommendations",
        "recommendations:read",
        200,
        lambda api, _: None,
    ),
    (
        "POST",
        "/v1/recommendations",
        "recommendations:read",
        200,
        lambda api, _: {"account_id": api.account_ids[0], "k": 1},
    ),
    (
        "POST",
        "/v1/feedback",
        "feedback:write",
        201,
        lambda api, rec_id: {"recommendation_id": rec_id, "outcome": "shown"},
    ),
    ("GET", "/v1/reps/{rep}/actions", "worklists:read", 200, lambda api, _: None),
    ("GET", "/v1/insights", "insights:read", 200, lambda api, _: None),
]
CREDENTIALS = ["none", "invalid", *API_KEY_SCOPES]


def _call(api: Api, route: Route, rec_id: str, headers: dict[str, str]) -> Any:
    method, path, _, _, body = route
    url = path.format(account=api.account_ids[0], rep="R001")
    payload = body(api, rec_id)
    return api.client.request(method, url, json=payload, headers=headers)


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("route", ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_every_route_checks_the_key_and_its_scope(
    api: Api, recommendation_id: str, route: Route, credential: str
) -> None:
    required, success = route[2], route[3]
    if credential == "none":
        headers: dict[str, str] = {}
    elif credential == "invalid":
        headers = {"Authorization": "Bearer nba_0123456789abcdef_not-the-secret"}
    else:
        headers = api.headers(credential)
    response = _call(api, route, recommendation_id, headers)
    if credential in ("none", "invalid"):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        expected = "missing API key" if credential == "none" else "invalid API key"
        assert response.json()["detail"].startswith(expected)
    elif credential in (required, "admin"):
        assert response.status_code == success, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["detail"] == (
            f"API key 'test-{credential}' lacks scope '{required}' (it has: {credential})"
        )


def test_the_key_may_come_in_x_api_key(api: Api) -> None:
    ok = api.client.get("/v1/reps/R001/actions", headers={"X-API-Key": api.keys["admin"]})
    assert ok.status_code == 200
    bad = api.client.get("/v1/reps/R001/actions", headers={"X-API-Key": "nope"})
    assert bad.status_code == 401


def test_health_ready_metrics_and_docs_need_no_key(api: Api) -> None:
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs"):
        assert api.client.get(path).status_code == 200, path


def test_a_revoked_key_stops_working_after_the_cache_ttl(api: Api) -> None:
    key = api.store.create_api_key("short-lived", ["recommendations:read"])
    now = [0.0]
    verifier = KeyVerifier(api.store, ttl_s=5.0, clock=lambda: now[0])
    assert verifier.verify(key) is not None
    api.store.revoke_api_key("short-lived")
    assert verifier.verify(key) is not None  # remembered for the TTL
    now[0] = 5.1
    assert verifier.verify(key) is None
    assert verifier.verify("garbage") is None


ALLOWED = "https://crm.example.com"


def test_cors_allows_only_configured_origins(tmp_path: Path) -> None:
    # No lifespan: preflights and /health need no store or models.
    app = create_app(Settings(cors_origins=(ALLOWED,)))
    client = TestClient(app)
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    ok = client.options("/v1/reps/R1/actions", headers={"Origin": ALLOWED, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    denied = client.options(
        "/v1/reps/R1/actions", headers={"Origin": "https://evil.example", **preflight}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    simple = client.get("/health", headers={"Origin": ALLOWED})
    assert simple.headers["access-control-allow-origin"] == ALLOWED
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers

    closed = TestClient(create_app(Settings()))  # default: no origin is allowed
    response = closed.get("/health", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in response.headers
    assert closed.options("/health", headers={"Origin": ALLOWED, **preflight}).status_code == 405
