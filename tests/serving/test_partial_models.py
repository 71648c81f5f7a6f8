"""Serving whatever models the registry holds: a set without next content, one without the
phase model and one with only a binary outcome model (found by its tags) answer through the
scorer, the API and `nba score`, each saying which parts are missing and why."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.pipeline import build_features
from models.arbitration import load_arbitration_config
from models.contract import CHAMPION, CHURN, NEXT_CONTENT, OUTCOME_KIND_TAG, OUTCOME_NAME_TAG, PHASE
from nba.cli import app as cli
from serving.model_holder import ModelHolder
from serving.scoring import Scorer
from tests.utils.api import Api, open_api, recommendations
from tests.utils.registry import TrainedRegistry
from training.datasets import as_of_grid, build_phase_set
from training.phase import train_phase
from training.tracking import configure_tracking, log_result

NO_ACTIONS = {"next_actions": "no champion of nba-next-content in the registry"}
NO_PHASE = {"phase": "no champion of nba-phase in the registry"}
NO_RISK = {"risk": "no champion of nba-churn in the registry"}
REPURCHASE = "nba-repurchase"


def _only_an_outcome(client: MlflowClient) -> None:
    """Register the churn champion's model again as the outcome model ``nba-repurchase``
    (tagged as training tags outcome models) and remove the three models' aliases."""
    churn = client.get_model_version_by_alias(CHURN, CHAMPION)
    client.create_registered_model(REPURCHASE)
    created = client.create_model_version(
        REPURCHASE,
        source=str(churn.source),
        run_id=churn.run_id,
        tags={OUTCOME_KIND_TAG: "outcome", OUTCOME_NAME_TAG: "repurchase"},
    )
    client.set_registered_model_alias(REPURCHASE, CHAMPION, str(created.version))
    for name in (PHASE, CHURN, NEXT_CONTENT):
        client.delete_registered_model_alias(name, CHAMPION)


CASES = {
    "no-next-content": ((NEXT_CONTENT,), NO_ACTIONS),
    "no-phase": ((PHASE,), NO_PHASE),
    "only-an-outcome": ((), {**NO_PHASE, **NO_RISK, **NO_ACTIONS}),
}


@pytest.fixture(scope="module", params=list(CASES))
def partial(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[tuple[str, Api]]:
    """The API over a copy of the registry holding a partial model set (SQLite store)."""
    case = str(request.param)
    directory = tmp_path_factory.mktemp(f"partial-{case}")
    shutil.copy(registry.root / "mlflow.db", directory / "mlflow.db")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    removed, _ = CASES[case]
    for name in removed:
        client.delete_registered_model_alias(name, CHAMPION)
    if case == "only-an-outcome":
        _only_an_outcome(client)
    with open_api("sqlite", directory, replace(registry, tracking_uri=uri)) as api:
        yield case, api


def test_ready_names_the_missing_parts(partial: tuple[str, Api]) -> None:
    case, api = partial
    ready = api.client.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["tracking_uri"] == api.registry.tracking_uri
    # each missing part: why, then what to run against which tracking store
    assert set(body["parts_missing"]) == set(CASES[case][1])
    for part, why in CASES[case][1].items():
        fix = body["parts_missing"][part]
        assert fix.startswith(why + ": train with `MLFLOW_TRACKING_URI=")
        assert api.registry.tracking_uri in fix and "nba promote" in fix


def test_recommendations_answer_with_the_models_there(partial: tuple[str, Api]) -> None:
    case, api = partial
    body = recommendations(api, api.account_ids[3], k=3)
    assert body["missing"] == CASES[case][1]
    assert body["cold_start"] is False
    if case == "no-next-content":
        assert body["actions"] == [] and body["phase"] is not None
        assert body["churn_risk"] is not None
        assert body["outcomes"] == {"churn": pytest.approx(body["churn_risk"])}
    if case == "no-phase":
        assert body["phase"] is None and body["phase_probabilities"] == {}
        assert len(body["actions"]) == 3 and body["churn_risk"] is not None
    if case == "only-an-outcome":
        assert body["phase"] is None and body["churn_risk"] is None and body["actions"] == []
        assert set(body["outcomes"]) == {"repurchase"}
        assert 0 <= body["outcomes"]["repurchase"] <= 1
    # an unknown account: a cold start says the same
    cold = recommendations(api, "A-never-seen", k=2)
    assert cold["cold_start"] is True and cold["missing"] == CASES[case][1]


def test_a_reps_worklist_answers_with_the_models_there(partial: tuple[str, Api]) -> None:
    case, api = partial
    accounts = api.registry.data.accounts.set_index("account_id")
    rep = str(accounts.loc[api.account_ids[0], "owner_rep_id"])
    response = api.client.get(f"/v1/reps/{rep}/actions", headers=api.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["missing"] == CASES[case][1] and body["items"]
    first = body["items"][0]
    assert (first["phase"] is None) == ("phase" in CASES[case][1])
    assert (first["action"] is None) == ("next_actions" in CASES[case][1])


def test_nba_score_writes_what_the_models_there_give(
    partial: tuple[str, Api], tmp_path: Path
) -> None:
    case, api = partial
    env = {
        "NBA_DATABASE_URL": api.store.url,
        "NBA_DATABASE_SCHEMA": api.store.schema or "",
        "MLFLOW_TRACKING_URI": api.client.app.state.services.holder.tracking_uri,  # type: ignore[attr-defined]
    }
    out = tmp_path / "scores.parquet"
    as_of = api.now.strftime("%Y-%m-%d")
    scored = CliRunner().invoke(cli, ["score", "--out", str(out), "--as-of", as_of], env=env)
    assert scored.exit_code == 0, scored.output
    for part, why in CASES[case][1].items():
        assert f"{part}: {why}" in scored.output
    scores = pd.read_parquet(out)
    assert len(scores) > 0
    missing = CASES[case][1]
    assert scores["phase"].isna().all() == ("phase" in missing)
    assert scores["churn_risk"].isna().all() == ("risk" in missing)
    assert scores["action_1_content_id"].isna().all() == ("next_actions" in missing)
    if case == "only-an-outcome":
        assert scores["outcome_repurchase"].between(0, 1).all()
    stored = api.store.stored_scores()
    assert len(stored) > 0 and stored["phase"].isna().all() == ("phase" in missing)


def test_a_phase_model_of_two_recorded_stages_serves(
    registry: TrainedRegistry, tmp_path: Path
) -> None:
    """A CRM recording lead -> won: the binary phase model passes the smoke test and answers
    probabilities over the taxonomy's phases, zero outside its two."""

    data = registry.data
    order = list(registry.taxonomy.phases)
    late = data.stages["phase"].astype(str).map(order.index) >= order.index("purchase")
    stages = data.stages.assign(phase=np.where(late, "purchase", "consideration"))
    stages["phase"] = stages["phase"].astype(data.stages["phase"].dtype)
    two = replace(data, stages=stages)
    features = build_features(two, as_of_grid(two, 10), registry.taxonomy)
    result = train_phase(
        build_phase_set(two, registry.taxonomy, features), params={"n_estimators": 30}
    )
    shutil.copy(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    uri = configure_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = log_result(result, artifact_root=tmp_path / "artifacts")
    MlflowClient().set_registered_model_alias(PHASE, CHAMPION, logged.version)

    holder = ModelHolder(uri, phases=tuple(order))
    assert holder.load(), holder.status().last_error
    assert holder.current.phase_classes == ("consideration", "purchase")
    scorer = Scorer(holder, registry.taxonomy, load_arbitration_config(), data.content)
    account = sorted(data.contacts["account_id"].astype(str).unique())[0]
    score = scorer.score_account(data, account, registry.now, rng=np.random.default_rng(0))
    assert list(score.phase_proba) == order
    assert sum(score.phase_proba.values()) == pytest.approx(1.0)
    assert {p for p, v in score.phase_proba.items() if v > 0} == {"consideration", "purchase"}
    assert score.phase in {"consideration", "purchase"} and not score.missing
    cold = scorer.score_account(None, "A-never-seen", registry.now, rng=np.random.default_rng(0))
    assert {p for p, v in cold.phase_proba.items() if v > 0} == {"consideration", "purchase"}
