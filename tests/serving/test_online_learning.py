"""Learning between retrains in the service: decisions and their rewards counted in the
store's online posterior, shared by every app over the store, with exact propensities
logged, and the off switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.arbitration import THOMPSON_SUFFIX
from models.contract import NEXT_CONTENT
from serving.app import create_app
from serving.routes import Services
from serving.settings import Settings, SettingsError
from tests.utils.api import Api, open_api, recommendations
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS, logged_recommendations


@pytest.fixture(scope="module", params=BACKENDS)
def learning(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Api]:
    """The app with learning between retrains on (the default) and 10 % exploration."""
    directory = tmp_path_factory.mktemp(f"learning-{request.param}")
    with open_api(
        request.param,
        directory,
        registry,
        online_learning=True,
        exploration_rate=0.1,
        online_refresh_s=0,  # the tests read the counts when they mean to
    ) as opened:
        yield opened


def _services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def _version(api: Api) -> str:
    return _services(api.client).scorer.models.versions.get(NEXT_CONTENT, "")


def _second_app(api: Api) -> TestClient:
    """Another app (another worker) over the same store."""
    settings = Settings(
        database_url=api.store.url,
        database_schema=api.store.schema,
        tracking_uri=api.registry.tracking_uri,
        reload_interval_s=0,
        online_refresh_s=0,
        random_seed=1,
    )
    return TestClient(create_app(settings, clock=lambda: api.now))


def _decide(api: Api, account: str) -> dict[str, Any]:
    body = recommendations(api, account, k=3)
    api.flush()
    return body


def test_decisions_log_the_sampled_policy_with_exact_propensities(learning: Api) -> None:
    account = learning.account_ids[0]
    body = _decide(learning, account)
    assert body["policy"].endswith(THOMPSON_SUFFIX)
    assert body["actions"], "the account has servable actions"
    rows = {r.id: r for r in logged_recommendations(learning.store, account)}
    for action in body["actions"]:
        row = rows[action["recommendation_id"]]
        assert row.propensity == action["propensity"]
        assert 0 < row.propensity <= 1
        assert row.segment == body["phase"]  # the account's likeliest phase
        assert row.kind == "decision"


def test_feedback_and_responses_count_once_and_reach_another_worker(learning: Api) -> None:
    account = learning.account_ids[1]
    body = _decide(learning, account)
    top = body["actions"][0]
    key = (body["phase"], top["content_id"])
    version = _version(learning)
    before = learning.store.posterior_counts(version)[key]
    assert before.trials >= 1  # the decision counted as a trial when it was logged
    # with the successes the model expected of it: at least its own probability
    assert before.expected >= top["p_response"] - 1e-9 > 0
    response = learning.client.post(
        "/v1/feedback",
        json={"recommendation_id": top["recommendation_id"], "outcome": "converted"},
        headers=learning.headers(),
    )
    assert response.status_code == 201, response.text
    # a response touchpoint on the same item rewards the decision no second time
    event = {
        "event_id": f"resp-{account}",
        "account_id": account,
        "ts": learning.now.isoformat(),
        "channel": "website",
        "event_type": "download",
        "content_id": top["content_id"],
    }
    ingested = learning.client.post(
        "/v1/events", json={"events": [event]}, headers=learning.headers()
    )
    assert ingested.json()["accepted"] == 1, ingested.text
    after = learning.store.posterior_counts(version)[key]
    assert after == before._replace(successes=before.successes + 1)
    with _second_app(learning) as other:
        posterior = _services(other).posteriors
        assert posterior is not None
        assert posterior.current(version).counts[key] == (after.successes, after.expected)


def test_a_response_touchpoint_rewards_the_decision_it_answers(learning: Api) -> None:
    account = learning.account_ids[2]
    body = _decide(learning, account)
    top = body["actions"][0]
    key = (body["phase"], top["content_id"])
    version = _version(learning)
    before = learning.store.posterior_counts(version)[key]
    event = {
        "event_id": f"click-{account}",
        "account_id": account,
        "ts": learning.now.isoformat(),
        "channel": "email",
        "event_type": "click",
        "content_id": top["content_id"],
    }
    assert (
        learning.client.post(
            "/v1/events", json={"events": [event]}, headers=learning.headers()
        ).json()["accepted"]
        == 1
    )
    assert learning.store.posterior_counts(version)[key] == before._replace(
        successes=before.successes + 1
    )
    rows = {r.id: r for r in logged_recommendations(learning.store, account)}
    assert rows[top["recommendation_id"]].rewarded_at is not None


def test_the_off_switch_serves_the_greedy_policy_and_counts_nothing(
    tmp_path: Path, registry: TrainedRegistry
) -> None:
    with open_api("sqlite", tmp_path, registry, online_learning=False) as api:
        assert _services(api.client).posteriors is None
        account = api.account_ids[0]
        body = _decide(api, account)
        assert not body["policy"].endswith(THOMPSON_SUFFIX)
        assert [a["propensity"] for a in body["actions"]] == [1.0] * len(body["actions"])
        assert {r.segment for r in logged_recommendations(api.store, account)} == {None}
        assert api.store.posterior_counts(_version(api)) == {}


def test_settings_read_the_online_learning_variables() -> None:
    assert Settings.from_env({}).online_learning is True
    off = Settings.from_env({"NBA_ONLINE_LEARNING": "0", "NBA_ONLINE_PRIOR_STRENGTH": "20"})
    assert off.online_learning is False and off.online_prior_strength == 20.0
    with pytest.raises(SettingsError, match="NBA_ONLINE_PRIOR_STRENGTH='-1'"):
        Settings.from_env({"NBA_ONLINE_PRIOR_STRENGTH": "-1"})
    assert Settings.from_env({"NBA_ONLINE_DRAW_SHARE": "0.25"}).online_draw_share == 0.25
    with pytest.raises(SettingsError, match="NBA_ONLINE_DRAW_SHARE='1.5'"):
        Settings.from_env({"NBA_ONLINE_DRAW_SHARE": "1.5"})
