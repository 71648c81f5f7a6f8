"""MLflow logging, registration and promotion against a real local SQLite tracking store."""

from __future__ import annotations

from collections.abc import Iterator

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from training.registry import RegistryError, latest_version, load_version, promote
from training.result import Evaluation, Gate, ModelName, ModelResult
from training.tracking import (
    FORCED_TAG,
    REPORT_ARTIFACT,
    champion_version,
    configure_tracking,
    gate_from_tags,
    log_result,
)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One store for the module (creating one takes seconds); each test uses its own model."""
    path = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)  # MLflow puts artifacts under ./mlruns
        yield configure_tracking(f"sqlite:///{path / 'mlflow.db'}")


def _fresh_registry(name: str) -> None:
    """Deletes registered model ``name`` when an earlier test of the module registered it
    (each test must also pass alone)."""
    client = MlflowClient()
    if client.search_registered_models(filter_string=f"name = '{name}'"):
        client.delete_registered_model(name)


def make_result(
    seed: int, n_estimators: int, name: ModelName = "churn"
) -> tuple[ModelResult, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    y = (x["a"] + rng.normal(scale=1.0, size=400) > 0).astype(int).to_numpy()
    model = lgb.LGBMClassifier(n_estimators=n_estimators, verbose=-1, random_state=seed)
    model.fit(x.iloc[:300], y[:300])
    p = model.predict_proba(x.iloc[300:])[:, 1]
    result = ModelResult(
        name=name,
        estimator=model,
        feature_columns=["a", "b", "c"],
        params={"n_estimators": n_estimators, "nested": {"depth": 3}},
        metrics={
            "model.roc_auc": 0.8,
            "baseline_recency.roc_auc": 0.6,
            "ceiling.auc": float("nan"),
        },
        primary_metric="model.roc_auc",
        report_markdown="| metric | model |\n|---|---|\n| roc_auc | 0.8 |\n",
        evaluation=Evaluation(y_true=y[300:], y_score=p),
        input_example=x.head(5),
        training_set_fingerprint="abc123",
        as_of_dates={"train": ["2024-01-01"], "valid": ["2024-02-01"], "test": ["2024-03-01"]},
    )
    return result, x.iloc[300:], y[300:]


def test_log_result_records_run_registers_and_first_version_is_champion(tracking: str) -> None:
    result, _, _ = make_result(0, 20)
    logged = log_result(result)
    assert logged.registered_name == "nba-churn" and logged.version == "1" and logged.champion
    run = mlflow.get_run(logged.run_id)
    assert run.data.metrics["model.roc_auc"] == 0.8
    assert "ceiling.auc" not in run.data.metrics  # NaN is not logged
    assert run.data.params["nested.depth"] == "3"
    assert run.data.params["training_set_fingerprint"] == "abc123"
    assert run.data.tags["nba.feature_pipeline_version"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(logged.run_id)}
    assert REPORT_ARTIFACT in artifacts and "plots" in artifacts
    plots = {a.path for a in MlflowClient().list_artifacts(logged.run_id, "plots")}
    assert plots == {"plots/calibration.png", "plots/gains.png", "plots/feature_importance.png"}
    assert champion_version("nba-churn") == "1"
    loaded = load_version("nba-churn", "1")
    np.testing.assert_allclose(
        loaded.predict_proba(result.input_example),
        result.estimator.predict_proba(result.input_example),
    )


def test_promote_moves_alias_only_when_challenger_scores_higher(tracking: str) -> None:
    from sklearn.metrics import roc_auc_score

    weak, x_test, y_test = make_result(1, 1, "next-content")
    strong, _, _ = make_result(1, 60, "next-content")
    log_result(weak)
    log_result(strong)
    assert latest_version("nba-next-content") == "2"
    assert champion_version("nba-next-content") == "1"

    def auc(model: lgb.LGBMClassifier) -> float:
        return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))

    outcome = promote("next-content", auc, metric="roc_auc")
    assert outcome.challenger_version == "2" and outcome.champion_version == "1"
    assert outcome.challenger_score is not None and outcome.champion_score is not None
    assert outcome.promoted == (outcome.challenger_score > outcome.champion_score)
    assert champion_version("nba-next-content") == ("2" if outcome.promoted else "1")
    assert "roc_auc=" in outcome.format()

    # a worse challenger leaves the champion in place
    log_result(make_result(1, 1, "next-content")[0])
    worse = promote("next-content", auc, metric="roc_auc")
    assert not worse.promoted and champion_version("nba-next-content") == outcome.challenger_version


def test_with_a_paired_comparison_a_tie_keeps_the_champion(tracking: str) -> None:
    """Given the challenger-minus-champion difference on the same test split, the alias
    moves only when its 95 % interval lies above 0, whatever the point scores say; the
    output shows the difference."""
    _fresh_registry("nba-churn")
    result, _, _ = make_result(4, 20, "churn")
    first = log_result(result)
    log_result(result)
    assert champion_version("nba-churn") == first.version
    scores = iter([0.80, 0.70, 0.80, 0.70])  # challenger, then champion, twice

    def score(model: object) -> float:
        return next(scores)

    ahead_by_noise = promote(
        "churn", score, metric="roc_auc", paired=lambda a, b: (0.1, -0.01, 0.2)
    )
    assert not ahead_by_noise.promoted and champion_version("nba-churn") == first.version
    assert "challenger - champion +0.1000 [-0.0100, +0.2000]" in ahead_by_noise.format()
    assert "a tie keeps the champion" in ahead_by_noise.format()
    shown = promote("churn", score, metric="roc_auc", paired=lambda a, b: (0.1, 0.02, 0.2))
    assert shown.promoted and champion_version("nba-churn") == shown.challenger_version
    assert shown.difference == (0.1, 0.02, 0.2)


def test_promote_without_versions_names_the_problem(tracking: str) -> None:
    with pytest.raises(RegistryError, match="no versions of nba-phase"):
        promote("phase", lambda m: 0.0, metric="macro_f1")


def test_a_first_version_losing_its_gate_is_not_champion(tracking: str) -> None:
    from dataclasses import replace

    result, _, _ = make_result(2, 20, "phase")
    losing = replace(result, gate=Gate("macro_f1_crm", 0.80, "crm_last", 0.83))
    logged = log_result(losing)
    assert not logged.champion and not logged.forced
    assert champion_version("nba-phase") is None
    tags = MlflowClient().get_model_version("nba-phase", logged.version).tags
    assert tags["gate_passed"] == "false" and tags["gate_baseline"] == "crm_last"
    assert tags["gate_model"] == "0.800000" and tags["gate_baseline_value"] == "0.830000"
    assert "LOSES" in logged.format("model.macro_f1_crm", 0.8)

    # promotion keeps refusing it: it is the best there is, but it loses to its baseline
    kept = promote("phase", lambda m: 0.5, metric="macro_f1_crm")
    assert not kept.promoted and "LOSES to its baseline" in kept.reason
    assert "model 0.8000 vs baseline crm_last 0.8300" in kept.format()
    assert champion_version("nba-phase") is None

    forced = promote("phase", lambda m: 0.5, metric="macro_f1_crm", force=True)
    assert forced.promoted and forced.forced and "--force" in forced.reason
    assert champion_version("nba-phase") == logged.version
    tags = MlflowClient().get_model_version("nba-phase", logged.version).tags
    assert tags[FORCED_TAG] == "true"


def test_a_gate_keeps_its_intervals_and_the_gates_table_shows_them(tracking: str) -> None:
    from dataclasses import replace

    from training.report import gates_table

    result, _, _ = make_result(5, 20, "phase")
    _fresh_registry("nba-phase")
    gate = Gate(
        "macro_f1_hindsight", 0.70, "crm_last", 0.60, (0.66, 0.74), (0.55, 0.64), (0.04, 0.16)
    )
    logged = log_result(replace(result, gate=gate))
    tags = MlflowClient().get_model_version("nba-phase", logged.version).tags
    assert gate_from_tags(tags) == gate
    assert (
        "model 0.7000 [0.6600, 0.7400] vs baseline crm_last 0.6000 [0.5500, 0.6400], "
        "difference +0.1000 [+0.0400, +0.1600]"
    ) in logged.format("model.macro_f1_hindsight", 0.7)
    row = next(line for line in gates_table(["nba-phase"]).splitlines() if "nba-phase" in line)
    assert (
        "| 0.7000 [0.6600, 0.7400] | crm_last | 0.6000 [0.5500, 0.6400] "
        "| +0.1000 [+0.0400, +0.1600] | wins |"
    ) in row
    # a gate stored before gates had intervals reads back without them, and one stored
    # before the paired difference was kept is judged on its point values
    old = {k: v for k, v in tags.items() if not k.endswith("_ci")}
    assert np.isnan(gate_from_tags(old).model_ci).all()  # type: ignore[union-attr]
    assert gate_from_tags(old).passed  # type: ignore[union-attr]


def test_a_model_within_noise_of_its_baseline_ties_and_a_tie_loses(tracking: str) -> None:
    """Ahead on the point values, but the paired difference's interval holds 0: the gate
    is not passed, the first version is not champion and the output says it LOSES."""
    from dataclasses import replace

    result, _, _ = make_result(5, 20, "phase")
    _fresh_registry("nba-phase")
    tie = Gate("macro_f1_hindsight", 0.61, "crm_last", 0.60, difference_ci=(-0.004, 0.025))
    assert tie.model > tie.baseline_value and not tie.passed and tie.tied
    logged = log_result(replace(result, gate=tie))
    assert not logged.champion and champion_version("nba-phase") is None
    said = logged.format("model.macro_f1_hindsight", 0.61)
    assert "LOSES (a tie: the difference's interval holds 0)" in said
    assert "not champion" in said
    worse = Gate("macro_f1_hindsight", 0.55, "crm_last", 0.60, difference_ci=(-0.08, -0.02))
    assert not worse.passed and not worse.tied and worse.verdict == "LOSES"
    ahead = replace(tie, difference_ci=(0.001, 0.025))
    assert ahead.passed and ahead.verdict == "wins"


def test_force_makes_a_losing_first_version_champion_and_logs_it(tracking: str) -> None:
    from dataclasses import replace

    result, _, _ = make_result(3, 20, "next-content")
    losing = replace(result, gate=Gate("roc_auc", 0.60, "best_single_action", 0.61))
    registered = "nba-next-content"
    _fresh_registry(registered)
    logged = log_result(losing, force=True)
    assert logged.champion and logged.forced
    assert champion_version(registered) == logged.version
    assert MlflowClient().get_model_version(registered, logged.version).tags[FORCED_TAG] == "true"
    assert mlflow.get_run(logged.run_id).data.tags[FORCED_TAG] == "true"
    assert "champion by --force" in logged.format("model.roc_auc", 0.6)


def test_promotion_needs_the_challengers_gate_as_well_as_a_better_score(tracking: str) -> None:
    from dataclasses import replace

    result, _, _ = make_result(4, 20, "churn")
    registered = "nba-churn"
    _fresh_registry(registered)
    first = log_result(replace(result, gate=Gate("roc_auc", 0.70, "rfm_logistic", 0.60)))
    assert first.champion
    better_but_losing = log_result(replace(result, gate=Gate("roc_auc", 0.70, "rfm", 0.71)))
    scores = iter([0.9, 0.7])  # challenger first, then champion
    outcome = promote("churn", lambda m: next(scores), metric="roc_auc")
    assert not outcome.promoted and champion_version(registered) == first.version
    assert outcome.challenger_version == better_but_losing.version
    assert outcome.challenger_score == 0.9 and outcome.champion_score == 0.7
    winning = log_result(replace(result, gate=Gate("roc_auc", 0.75, "rfm", 0.71)))
    scores = iter([0.9, 0.7])
    outcome = promote("churn", lambda m: next(scores), metric="roc_auc")
    assert outcome.promoted and not outcome.forced
    assert champion_version(registered) == winning.version


def test_a_model_with_categorical_inputs_round_trips_through_mlflow(
    tracking: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Categories reach LightGBM as codes (models.fitting): the logged example and signature
    are numbers, MLflow validates them without a warning, and the model predicts on its
    own example through MLflow's pyfunc and LightGBM loaders, as outside this project."""
    from mlflow.models import Model

    from models.fitting import fit_classifier, model_frame

    rng = np.random.default_rng(3)
    kind = pd.Categorical(rng.choice(["x", "y", "z"], size=400), categories=["x", "y", "z"])
    x = pd.DataFrame({"a": rng.normal(size=400), "kind": kind})
    y = ((x["a"] + 2 * (x["kind"] == "y") + rng.normal(size=400)) > 1).astype(int).to_numpy()
    model = fit_classifier(
        {"n_estimators": 30, "verbose": -1, "min_child_samples": 5},
        x.iloc[:300],
        y[:300],
        x.iloc[300:],
        y[300:],
        early_stopping_rounds=10,
    )
    result, _, _ = make_result(4, 5, "phase")
    result = ModelResult(
        **{
            **result.__dict__,
            "estimator": model,
            "feature_columns": ["a", "kind"],
            "input_example": x.head(5),
        }
    )
    capfd.readouterr()
    logged = log_result(result)
    printed = capfd.readouterr()
    assert "Created version" in printed.out + printed.err  # what MLflow prints is seen here
    # MLflow predicts on the example when logging and warns when it cannot
    assert "input example" not in printed.out + printed.err
    uri = f"models:/{logged.registered_name}/{logged.version}"
    info = Model.load(uri)
    assert info.metadata == {"categories": {"kind": ["x", "y", "z"]}}
    example = info.load_input_example(mlflow.artifacts.download_artifacts(uri))
    assert example["kind"].tolist() == [float("xyz".index(v)) for v in x["kind"].head(5)]
    labels = mlflow.pyfunc.load_model(uri).predict(example)
    assert len(labels) == 5
    proba = mlflow.lightgbm.load_model(uri).predict_proba(example)
    expected = model.predict_proba(model_frame(model, x.head(5)))
    np.testing.assert_allclose(proba, expected)


def test_a_result_keeps_no_view_of_the_training_rows() -> None:
    result, _, _ = make_result(0, 5)
    rows = pd.DataFrame(np.arange(4000.0).reshape(1000, 4), columns=list("abcd"))
    kept = type(result)(**{**vars(result), "input_example": rows.iloc[200:].head(5)})
    pd.testing.assert_frame_equal(kept.input_example, rows.iloc[200:205])
    assert not np.shares_memory(kept.input_example.to_numpy(), rows.to_numpy())
