"""The HTTP API through FastAPI's TestClient, against SQLite and the local PostgreSQL: event
ingestion, recommendations (full answer, cold start, filters, an ingested event changing
the answer), feedback, the rep worklist, health/ready/metrics and the OpenAPI document.

The app scores a slice of the trained registry's simulated accounts at a fixed clock (the
end of the simulated period) with exploration off, so answers are deterministic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from features.pipeline import select_accounts
from serving.store.tables import Feedback, Recommendation
from tests.utils.api import MAX_BODY, MAX_EVENTS, Api, event, open_api, recommendations
from tests.utils.registry import TrainedRegistry
from tests.utils.store import logged_recommendations

VERSIONS = {"nba-phase": "1", "nba-churn": "1", "nba-next-content": "1"}


# -- events -----------------------------------------------------------------------------------


def test_events_are_stored_once_and_replays_are_duplicates(api: Api) -> None:
    batch = [event("E-api-1"), event("E-api-2", ts="2025-06-21T10:00:00Z")]
    first = api.client.post("/v1/events", json={"events": batch}, headers=api.headers())
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    replay = api.client.post("/v1/events", json={"events": batch}, headers=api.headers())
    assert replay.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    data = api.store.account_data("A-new-1")
    assert data is not None
    assert sorted(data.touchpoints["event_id"]) == ["E-api-1", "E-api-2"]
    assert data.contacts["role"].astype(str).tolist() == ["it"]


def test_a_mixed_batch_keeps_the_valid_records_and_names_each_error(api: Api) -> None:
    batch = [
        event("E-mix-1", account="A-mix"),
        event("E-mix-2", account="A-mix", channel="fax"),
        {"account_id": "A-mix", "ts": "2025-06-20T10:00:00Z"},
        event("E-mix-4", account="A-mix", ts="not a time"),
        event("E-mix-5", account="A-mix", ts="2025-06-22T10:00:00Z"),
    ]
    response = api.client.post("/v1/events", json={"events": batch}, headers=api.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    rejected = {(r["index"], r["field"]) for r in body["rejected"]}
    assert rejected == {(1, "channel"), (2, "event_id"), (3, "ts")}
    assert "fax" in body["rejected"][0]["reason"]
    data = api.store.account_data("A-mix")
    assert data is not None
    assert sorted(data.touchpoints["event_id"]) == ["E-mix-1", "E-mix-5"]


def test_too_many_events_or_too_large_a_body_answer_413(api: Api) -> None:
    many = [event(f"E-many-{i}") for i in range(MAX_EVENTS + 1)]
    response = api.client.post("/v1/events", json={"events": many}, headers=api.headers())
    assert response.status_code == 413
    assert response.json()["detail"].startswith(f"{MAX_EVENTS + 1} events in one request")
    assert "NBA_MAX_EVENTS_PER_REQUEST" in response.json()["detail"]

    big = [event("E-big", note="x" * MAX_BODY)]
    response = api.client.post("/v1/events", json={"events": big}, headers=api.headers())
    assert response.status_code == 413
    assert "exceeds the limit of 65,536 bytes (NBA_MAX_BODY_BYTES)" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"events": ['
        for _ in range(20):
            yield b'"' + b"y" * 4096 + b'",'
        yield b"1]}"

    response = api.client.post(
        "/v1/events",
        content=chunks(),
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "NBA_MAX_BODY_BYTES" in response.json()["detail"]
    activity = api.store.account_activity("A-new-1", served_since=api.now, dismissed_since=api.now)
    assert activity is not None  # nothing else happened


# -- recommendations --------------------------------------------------------------------------


def test_a_known_account_gets_a_full_answer_and_every_action_is_logged(api: Api) -> None:
    account = api.account_ids[0]
    body = recommendations(api, account, k=3)
    assert body["account_id"] == account and body["cold_start"] is False and body["known"]
    assert list(body["phase_probabilities"]) == api.registry.taxonomy.phases
    assert sum(body["phase_probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert body["phase"] == max(body["phase_probabilities"], key=body["phase_probabilities"].get)
    assert 1 <= len(body["phase_reasons"]) <= 3
    assert 0 <= body["churn_risk"] <= 1 and body["churn_band"] in ("low", "medium", "high")
    assert body["model_versions"] == VERSIONS
    assert body["policy"] == "ev-greedy-epsilon-v1" and body["explored"] is False
    assert pd.Timestamp(body["as_of"]) == api.now
    actions = body["actions"]
    assert [a["rank"] for a in actions] == [1, 2, 3]
    evs = [a["expected_value"] for a in actions]
    assert evs == sorted(evs, reverse=True)
    for a in actions:
        assert a["contact_id"] and a["title"] and a["content_type"] and a["channel"]
        assert a["propensity"] == 1.0  # exploration is off: the greedy policy is certain
        assert 1 <= len(a["reasons"]) <= 3 and all(len(r["text"]) > 5 for r in a["reasons"])
    assert all(h["rule"] for h in body["held_back"])

    api.flush()
    served = logged_recommendations(api.store, account, api.now)
    logged = {s.id: s for s in served if s.request_id == body["request_id"]}
    assert set(logged) == {a["recommendation_id"] for a in actions}
    for a in actions:
        row = logged[a["recommendation_id"]]
        assert (row.content_id, row.contact_id, row.rank) == (
            a["content_id"],
            a["contact_id"],
            a["rank"],
        )
        assert row.propensity == a["propensity"] and row.policy == body["policy"]
        assert row.model_versions == VERSIONS


def test_an_ingested_event_changes_the_next_recommendations(api: Api) -> None:
    account = api.account_ids[1]
    before = recommendations(api, account, k=3)
    top = before["actions"][0]
    # the top action's contact just downloaded the recommended item
    ts = (api.now - pd.Timedelta(hours=1)).isoformat()
    ingested = api.client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": f"E-changes-{account}",
                    "account_id": account,
                    "contact_id": top["contact_id"],
                    "ts": ts,
                    "channel": top["channel"],
                    "event_type": "download",
                    "content_id": top["content_id"],
                }
            ]
        },
        headers=api.headers("events:write"),
    )
    assert ingested.json()["accepted"] == 1, ingested.text
    after = recommendations(api, account, k=3)
    pairs = {(a["contact_id"], a["content_id"]) for a in after["actions"]}
    assert (top["contact_id"], top["content_id"]) not in pairs  # consumed just now
    assert after["phase_probabilities"] != before["phase_probabilities"]  # new features


def test_an_unknown_account_gets_a_flagged_cold_start(api: Api) -> None:
    body = recommendations(api, "no-such-account", k=4)
    assert body["known"] is False and body["cold_start"] is True and body["churn_risk"] is None
    # an account with no history is early in its journey, not where the population is
    assert body["phase"] in {"trigger", "awareness"}
    assert body["churn_band"] is None and body["policy"] == "cold-start-popular"
    assert body["model_versions"] == VERSIONS
    assert len(body["actions"]) == 4
    catalog = api.registry.data.content.set_index("content_id")
    for a in body["actions"]:
        assert a["contact_id"] is None
        assert body["phase"] in list(catalog.loc[a["content_id"], "phases"])
    api.flush()
    logged = logged_recommendations(api.store, "no-such-account", api.now)
    assert {s.id for s in logged} >= {a["recommendation_id"] for a in body["actions"]}


def test_k_and_filters(api: Api) -> None:
    account = api.account_ids[2]
    assert len(recommendations(api, account, k=1)["actions"]) == 1
    full = recommendations(api, account, k=5)
    contact = full["actions"][0]["contact_id"]
    only = recommendations(api, account, k=5, contact_id=contact)
    assert only["actions"] and {a["contact_id"] for a in only["actions"]} == {contact}
    role = full["actions"][0]["role"]
    by_role = recommendations(api, account, k=5, role=role)
    assert by_role["actions"] and {a["role"] for a in by_role["actions"]} == {role}
    channel = full["actions"][0]["channel"]
    by_channel = recommendations(api, account, k=5, channel=channel)
    assert {a["channel"] for a in by_channel["actions"]} == {channel}
    assert all(
        h["rule"] != "filtered by channel" or h["content_id"] for h in by_channel["held_back"]
    )

    url = f"/v1/accounts/{account}/recommendations"
    for params in ({"k": 0}, {"k": 51}, {"channel": "fax"}, {"role": "astronaut"}):
        response = api.client.get(url, params=params, headers=api.headers())
        assert response.status_code == 422, params
    assert (
        "channel 'fax' is unknown"
        in api.client.get(url, params={"channel": "fax"}, headers=api.headers()).json()["detail"]
    )


def test_post_recommendations_answers_like_get(api: Api) -> None:
    account = api.account_ids[3]
    response = api.client.post(
        "/v1/recommendations", json={"account_id": account, "k": 2}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    got = recommendations(api, account, k=2)
    assert [a["content_id"] for a in body["actions"]] == [a["content_id"] for a in got["actions"]]
    assert body["phase_probabilities"] == got["phase_probabilities"]
    bad = api.client.post(
        "/v1/recommendations", json={"account_id": account, "colour": "red"}, headers=api.headers()
    )
    assert bad.status_code == 422


# -- feedback ---------------------------------------------------------------------------------


def test_feedback_is_stored_and_a_dismissal_holds_the_item_back(api: Api) -> None:
    account = api.account_ids[4]
    first = recommendations(api, account, k=3)
    action = first["actions"][0]
    response = api.client.post(
        "/v1/feedback",
        json={
            "recommendation_id": action["recommendation_id"],
            "outcome": "dismissed",
            "note": "no",
        },
        headers=api.headers("feedback:write"),
    )
    assert response.status_code == 201, response.text
    feedback_id = response.json()["feedback_id"]
    with api.store.engine.connect() as conn:
        row = conn.execute(select(Feedback).where(Feedback.id == feedback_id)).one()
        rec = conn.execute(
            select(Recommendation).where(Recommendation.id == action["recommendation_id"])
        ).one()
    assert (row.recommendation_id, row.outcome, row.note) == (
        action["recommendation_id"],
        "dismissed",
        "no",
    )
    assert row.at == api.now.value and rec.account_id == account

    again = recommendations(api, account, k=3)
    assert action["content_id"] not in {a["content_id"] for a in again["actions"]}
    held = {h["content_id"]: h["rule"] for h in again["held_back"]}
    assert held.get(action["content_id"]) == "dismissed recently"


def test_feedback_for_an_unknown_id_is_404_and_a_bad_outcome_422(api: Api) -> None:
    response = api.client.post(
        "/v1/feedback",
        json={"recommendation_id": "nope", "outcome": "accepted"},
        headers=api.headers(),
    )
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "feedback.recommendation_id 'nope' is unknown; expected the id of a served recommendation"
    )
    response = api.client.post(
        "/v1/feedback",
        json={"recommendation_id": "nope", "outcome": "loved it"},
        headers=api.headers(),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "outcome"]


# -- rep worklist -----------------------------------------------------------------------------


def test_a_reps_worklist_is_ranked_and_holds_only_their_accounts(api: Api) -> None:
    accounts = select_accounts(api.registry.data, api.account_ids).accounts
    owners = accounts["owner_rep_id"].astype(str).value_counts()
    rep = str(owners.index[0])
    mine = set(accounts.loc[accounts["owner_rep_id"].astype(str) == rep, "account_id"].astype(str))
    response = api.client.get(f"/v1/reps/{rep}/actions", headers=api.headers("worklists:read"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rep_id"] == rep and body["accounts"] == len(mine) == int(owners.iloc[0])
    items = body["items"]
    assert {i["account_id"] for i in items} == mine
    with_action = [i for i in items if i["action"] is not None]
    assert with_action and items[: len(with_action)] == with_action  # actionless last
    evs = [i["action"]["expected_value"] for i in with_action]
    assert evs == sorted(evs, reverse=True)
    for item in with_action:
        assert item["action"]["reasons"] and item["action"]["propensity"] == 1.0
        assert item["phase"] in api.registry.taxonomy.phases
    api.flush()
    logged = logged_recommendations(api.store, with_action[0]["account_id"], api.now)
    assert logged[-1].id == with_action[0]["action"]["recommendation_id"]
    assert logged[-1].policy == "ev-greedy-epsilon-v1/worklist-greedy"

    limited = api.client.get(
        f"/v1/reps/{rep}/actions", params={"limit": 2}, headers=api.headers()
    ).json()
    assert [i["account_id"] for i in limited["items"]] == [i["account_id"] for i in items[:2]]
    empty = api.client.get("/v1/reps/R-nobody/actions", headers=api.headers()).json()
    assert (empty["accounts"], empty["items"]) == (0, [])


# -- health, metrics, OpenAPI -----------------------------------------------------------------


def test_health_ready_and_metrics(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    ready = api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "store": True,
        "models": True,
        "model_versions": VERSIONS,
        "missing": [],
        "last_reload_error": None,
        "parts_missing": {},
        "tracking_uri": api.registry.tracking_uri,
    }
    recommendations(api, api.account_ids[5], k=2)
    api.client.post("/v1/events", json={"events": [event("E-metrics-1")]}, headers=api.headers())
    text = api.client.get("/metrics").text
    route = "/v1/accounts/{account_id}/recommendations"
    assert f'nba_http_requests_total{{method="GET",route="{route}",status="200"}}' in text
    assert (
        f'nba_http_request_duration_seconds_bucket{{le="0.02",method="GET",route="{route}"}}'
        in text
    )
    assert 'nba_http_requests_total{method="POST",route="/v1/events",status="413"}' in text
    assert 'nba_model_version{alias="champion",model="nba-phase"} 1.0' in text
    assert "nba_models_ready 1.0" in text and "nba_model_reload_failures_total 0.0" in text
    assert 'nba_events_ingested_total{outcome="accepted"}' in text
    assert 'nba_recommendations_served_total{policy="ev-greedy-epsilon-v1"}' in text
    assert "nba_served_log_pending " in text and "nba_served_log_write_failures_total 0.0" in text
    api.flush()
    flushed = api.client.get("/metrics").text
    assert "nba_served_log_pending 0.0" in flushed
    [written] = [
        float(line.split()[1])
        for line in flushed.splitlines()
        if line.startswith("nba_served_log_written_total ")
    ]
    assert written > 0


def test_ready_is_503_with_the_reason_when_models_cannot_load(
    tmp_path: Path, registry: TrainedRegistry
) -> None:
    with open_api("sqlite", tmp_path, registry, model_alias="no-such-alias") as api:
        ready = api.client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready" and body["store"] is True and body["models"] is False
        assert "no-such-alias" in body["last_reload_error"]
        assert body["missing"][0].startswith(
            "models: no model set loaded from alias 'no-such-alias'"
        )
        # ... and what to run about it, against which tracking store
        assert (
            f"train with `MLFLOW_TRACKING_URI={registry.tracking_uri} nba train all"
            in (body["missing"][0])
        )
        assert "nba promote" in body["missing"][0]
        response = api.client.get(
            f"/v1/accounts/{api.account_ids[0]}/recommendations", headers=api.headers()
        )
        assert response.status_code == 503 and "no-such-alias" in response.json()["detail"]
        text = api.client.get("/metrics").text
        assert "nba_models_ready 0.0" in text and "nba_model_reload_failures_total 1.0" in text


def test_a_tracking_file_that_is_not_there_is_named_and_not_created(
    tmp_path: Path, registry: TrainedRegistry
) -> None:
    absent = tmp_path / "nowhere" / "mlflow.db"
    uri = f"sqlite:///{absent}"
    with open_api("sqlite", tmp_path, replace(registry, tracking_uri=uri)) as api:
        ready = api.client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["tracking_uri"] == uri
        assert (
            f"tracking URI {uri} holds no models: {absent} does not exist"
            in (body["last_reload_error"])
        )
    assert not absent.exists() and not absent.parent.exists()


def test_openapi_documents_every_route_with_examples(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/v1/events",
        "/v1/accounts/{account_id}/recommendations",
        "/v1/recommendations",
        "/v1/feedback",
        "/v1/reps/{rep_id}/actions",
        "/health",
        "/ready",
        "/metrics",
    }
    schemas = spec["components"]["schemas"]
    for name in ("EventsRequest", "EventsResponse", "RecommendationsResponse", "FeedbackRequest"):
        assert schemas[name]["examples"], name
    assert schemas["EventsRequest"]["examples"][0]["events"][0]["event_id"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "413" in paths["/v1/events"]["post"]["responses"]


def test_a_rep_key_reads_recommendations_only_for_the_reps_accounts(api: Api) -> None:
    owners = api.registry.data.accounts.set_index("account_id")["owner_rep_id"].astype(str)
    mine = api.account_ids[0]
    rep = owners[mine]
    theirs = next(a for a in api.account_ids if owners[a] != rep)
    key = api.store.create_api_key(f"phone-{rep}", ["recommendations:read"], rep_id=rep)
    headers = {"Authorization": f"Bearer {key}"}
    assert (
        api.client.get(f"/v1/accounts/{mine}/recommendations", headers=headers).status_code == 200
    )
    denied = api.client.get(f"/v1/accounts/{theirs}/recommendations", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["detail"] == (
        f"API key 'phone-{rep}' is bound to rep '{rep}'; account '{theirs}' belongs to another rep"
    )
    posted = api.client.post("/v1/recommendations", json={"account_id": theirs}, headers=headers)
    assert posted.status_code == 403
    # an account the store does not know has nothing to protect: a cold start
    unknown = api.client.get("/v1/accounts/no-such-account/recommendations", headers=headers)
    assert unknown.status_code == 200 and unknown.json()["cold_start"] is True
    # admin keys read every account
    assert (
        api.client.get(f"/v1/accounts/{theirs}/recommendations", headers=api.headers()).status_code
        == 200
    )
