"""Binary outcome training on the simulator's churn (the default outcome): beats the
recency baseline, is calibrated, reports intervals, the simulator's own probabilities and the
gate on its peer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.pipeline import build_features
from features.simulate import Simulation, SimulationTruth, simulate
from features.simulate.params import SimulationParams
from features.taxonomy import Taxonomy, load_taxonomy
from models import churn as churn_model
from models.outcomes import Outcome, load_outcomes
from tests.utils.data import write_bare_dir
from tests.utils.models import Reversed
from training import baselines as baselines_module
from training.baselines import BaselineError, FeatureLogistic, RecencyLogistic
from training.datasets import TrainingSet, TrainingSetError, as_of_grid, model_splits
from training.outcome import (
    churn_metrics,
    fit_baselines,
    paired_outcome,
    score_outcome,
    train_outcome,
    true_churn_for_rows,
)
from training.outcome_sets import build_outcome_set, outcome_moments
from training.result import ModelResult
from training.train import build_set, prepare

# The churn outcome's figures and intervals on the legacy world: 1,500 realistic accounts
# hold too few churns for intervals this narrow.
LEGACY = SimulationParams.profile("legacy")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(1500, seed=3, params=LEGACY)


@pytest.fixture(scope="module")
def churn() -> Outcome:
    (default,) = load_outcomes()
    return default


@pytest.fixture(scope="module")
def churn_set(sim: Simulation, taxonomy: Taxonomy, churn: Outcome) -> TrainingSet:
    features = build_features(sim.data, as_of_grid(sim.data, 12), taxonomy)
    moments = outcome_moments(sim.data, churn, n_dates=12)
    return build_outcome_set(sim.data, taxonomy, features, churn, moments)


@pytest.fixture(scope="module")
def oracle_truth(sim: Simulation, churn_set: TrainingSet) -> SimulationTruth:
    """The truth of the same run with the churn oracle at the test dates (few draws)."""
    rerun = simulate(
        1500, seed=3, oracle_as_of=churn_set.split.dates.test, oracle_draws=40, params=LEGACY
    )
    pd.testing.assert_frame_equal(rerun.data.touchpoints, sim.data.touchpoints)
    return rerun.truth


@pytest.fixture(scope="module")
def result(churn_set: TrainingSet, oracle_truth: SimulationTruth, churn: Outcome) -> ModelResult:
    return train_outcome(churn_set, churn, truth=oracle_truth)


def test_recency_baseline_learns_that_silence_means_churn() -> None:
    frame = pd.DataFrame(
        {
            "days_since_last_touch": [1.0, 2.0, 3.0, 60.0, 90.0, 120.0, 5.0, 100.0],
            "days_since_event_usage": [1.0, 1.0, 2.0, np.nan, 80.0, np.nan, 3.0, 90.0],
        }
    )
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p = RecencyLogistic().fit(frame, y).predict_proba(frame)
    assert p[[3, 4, 5, 7]].min() > p[[0, 1, 2, 6]].max()
    with pytest.raises(BaselineError, match="days_since_event_usage"):
        RecencyLogistic().fit(frame[["days_since_last_touch"]], y)


def test_logistic_baselines_do_not_extrapolate_past_the_training_range() -> None:
    """A feature that grows with every later as-of date (days since the first touch) meets
    test values beyond any training value: the baselines answer there as at the training
    maximum, as a tree would, instead of extrapolating their logit without bound."""
    rng = np.random.default_rng(0)
    days = rng.uniform(0, 100, 400)
    frame = pd.DataFrame(
        {
            "days_since_first_touch": days,
            "days_since_last_touch": days,
            "days_since_event_usage": days / 2,
            "segment": rng.choice(["a", "b"], 400),
        }
    )
    y = (rng.uniform(0, 100, 400) < days).astype(int)
    later = frame.copy()
    later[["days_since_first_touch", "days_since_last_touch"]] += 900.0
    later["days_since_event_usage"] += 450.0
    at_max = frame.copy()
    for c in ("days_since_first_touch", "days_since_last_touch", "days_since_event_usage"):
        at_max[c] = frame[c].max()
    for baseline in (
        FeatureLogistic(("days_since_first_touch", "segment")).fit(frame, y),
        RecencyLogistic().fit(frame, y),
    ):
        p_later, p_max = baseline.predict_proba(later), baseline.predict_proba(at_max)
        np.testing.assert_allclose(p_later, p_max, rtol=1e-12)
        assert 0.5 < p_max.mean() < 0.99  # the learnt slope still counts within the range
        # inside the range it still ranks by the learnt slope
        inside = baseline.predict_proba(frame)
        assert roc_auc_score(y, inside) > 0.75


def test_logistic_baseline_scores_in_chunks_as_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring a few rows at a time (the test split's design matrix is GBs at 1M accounts)
    gives what one matrix of every row gives."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=300),
            "z": np.where(rng.uniform(size=300) < 0.2, np.nan, rng.normal(size=300)),
            "segment": rng.choice(["a", "b", "c"], 300),
        }
    )
    y = (frame["x"] + rng.normal(size=300) > 0).astype(int).to_numpy()
    baseline = FeatureLogistic(("x", "z", "segment")).fit(frame, y)
    whole = baseline.predict_proba(frame)
    monkeypatch.setattr(baselines_module, "PREDICT_ROWS", 7)
    np.testing.assert_array_equal(baseline.predict_proba(frame), whole)


def test_every_feature_baseline_leaves_out_constant_inputs_without_changing_an_answer(
    churn_set: TrainingSet,
) -> None:
    """Most features are never missing, so their "missing" flags are constant: the design
    leaves such columns out (memory: Newton steps hold the design twice), and the answers
    are those of a fit that keeps them (the L2 penalty holds a constant column's weight at
    0 and the training range clips it to 0)."""
    train, test = churn_set.split.train, churn_set.split.test
    y = model_splits(churn_set).y_train
    fitted = FeatureLogistic(tuple(churn_set.feature_columns)).fit(train, y)
    every: list[tuple[str, str, str]] = []
    for column in fitted.columns:
        if pd.api.types.is_numeric_dtype(train[column]):
            every += [(column, "value", ""), (column, "missing", "")]
        else:
            levels = sorted(train[column].dropna().astype(str).unique())
            every += [(column, "level", level) for level in levels]
    assert len(every) > 1.3 * len(fitted.pieces)  # something was left out
    x = baselines_module._design(train, every)
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    x = (x - mean) / scale
    low, high = x.min(axis=0), x.max(axis=0)
    reference = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=2000).fit(x, y)
    x_test = np.clip((baselines_module._design(test, every) - mean) / scale, low, high)
    np.testing.assert_allclose(
        fitted.predict_proba(test), reference.predict_proba(x_test)[:, 1], rtol=1e-6, atol=1e-9
    )


def test_a_logistic_baseline_without_a_varying_input_answers_the_training_rate() -> None:
    """As a fit on constant inputs would (their weights held at 0, the intercept at the
    rate): a small real set where no account has bought yet keeps its RFM peer."""
    frame = pd.DataFrame({"x": [1.0, 1.0, 1.0, 1.0], "segment": ["a"] * 4})
    baseline = FeatureLogistic(("x", "segment")).fit(frame, np.array([0, 1, 0, 0]))
    later = pd.DataFrame({"x": [5.0, np.nan], "segment": ["b", "a"]})
    np.testing.assert_array_equal(baseline.predict_proba(later), [0.25, 0.25])


def test_churn_metrics_exact_on_hand_built_rows() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = churn_metrics(y, p)
    assert m["roc_auc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["positive_rate"] == 0.5


def test_model_beats_recency_baseline_and_the_oracle_is_above_the_model(
    result: ModelResult,
) -> None:
    m = result.metrics
    assert m["model.roc_auc"] > m["baseline_recency_logistic.roc_auc"] + 0.05
    # The Monte Carlo oracle is a true upper reference: at or above the model within the
    # interval, on ranking and on calibration (Brier), and its share is at most 1.
    assert m["oracle.roc_auc"] >= m["model.roc_auc_ci_low"]
    assert m["oracle.brier"] <= m["model.brier_ci_high"]
    assert m["model.oracle_auc_share_ci_low"] <= 1.0
    low, high = m["model.oracle_auc_share_ci_low"], m["model.oracle_auc_share_ci_high"]
    assert low <= m["model.oracle_auc_share"] <= high
    # The held hazard (the as-of week's hazard held for the horizon) is no bound: it
    # under-predicts, and the oracle ranks better.
    assert m["held_hazard.mean_predicted"] < m["oracle.mean_predicted"]
    assert m["oracle.roc_auc"] > m["held_hazard.roc_auc"]
    assert "ceiling.roc_auc" not in m and "truth_probability.roc_auc" not in m
    assert m["model.pr_auc"] > m["baseline_recency_logistic.pr_auc"]
    assert m["model.lift_top_decile"] > 2


def test_intervals_hold_the_figures_and_the_gate_compares_with_the_rfm_peer(
    result: ModelResult, churn_set: TrainingSet
) -> None:
    m = result.metrics
    # the uncalibrated model has its intervals too (its Brier and ECE show what calibration
    # buys)
    scorers = ("model", "model_uncalibrated", "baseline_rfm_logistic", "baseline_logistic")
    for who in (*scorers, "oracle"):
        for metric in ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"):
            assert (
                m[f"{who}.{metric}_ci_low"] <= m[f"{who}.{metric}"] <= m[f"{who}.{metric}_ci_high"]
            )
            widest = 3.0 if metric == "lift_top_decile" else 0.3
            assert m[f"{who}.{metric}_ci_high"] - m[f"{who}.{metric}_ci_low"] < widest
    difference = m["model.roc_auc"] - m["baseline_rfm_logistic.roc_auc"]
    low, high = m["model_minus_peer.roc_auc_ci_low"], m["model_minus_peer.roc_auc_ci_high"]
    assert low - 0.02 <= difference <= high + 0.02
    # and against the strongest baseline on validation (the gate's bar)
    assert result.gate is not None
    difference = m["model.roc_auc"] - m[f"{result.gate.baseline}.roc_auc"]
    low = m["model_minus_strongest.roc_auc_ci_low"]
    high = m["model_minus_strongest.roc_auc_ci_high"]
    assert low - 0.02 <= difference <= high + 0.02
    gate = result.gate
    assert gate is not None and gate.metric == "roc_auc"
    # the bar is the strongest baseline on validation, whichever the outcome's peer is
    valid = churn_set.split.valid
    strongest = max(
        roc_auc_score(valid[churn_set.label_column], baseline.predict_proba(valid))
        for baseline in fit_baselines(churn_set, model_splits(churn_set)).values()
    )
    assert gate.baseline.startswith("baseline_")
    assert gate.baseline_value == pytest.approx(strongest)
    assert gate.model == pytest.approx(
        roc_auc_score(
            churn_set.split.valid[churn_set.label_column],
            churn_model.predict_proba(result.estimator, churn_set.split.valid),
        )
    )
    assert gate.passed == (gate.model > gate.baseline_value)
    assert json.loads(result.extra_artifacts["outcome.json"])["name"] == "churn"


def test_probabilities_are_calibrated(result: ModelResult) -> None:
    # 0.03 is the target at 20k accounts (bench); ~100 churners here make ECE noisier.
    assert result.metrics["model.ece"] <= 0.045
    assert (
        abs(result.metrics["model.mean_predicted"] - result.metrics["model.positive_rate"]) < 0.03
    )
    stored = json.loads(result.extra_artifacts["calibration.json"])
    assert stored == {
        "calibration_a": result.params["calibration_a"],
        "calibration_b": result.params["calibration_b"],
    }


def test_result_is_complete_and_score_is_the_primary_metric(
    result: ModelResult, churn_set: TrainingSet
) -> None:
    assert result.name == "churn"
    assert result.primary_metric == "model.roc_auc"
    assert list(result.input_example.columns) == result.feature_columns
    assert len(result.input_example) == 5
    assert len(result.evaluation.y_true) == len(churn_set.split.test)
    assert result.as_of_dates["test"] == ["2025-09-01T00:00:00+00:00", "2025-10-01T00:00:00+00:00"]
    assert "| roc_auc |" in result.report_markdown
    # Promotion scores the raw model; calibration is monotone and keeps the AUC.
    assert score_outcome(result.estimator, churn_set) == pytest.approx(
        result.metrics["model.roc_auc"]
    )
    served = churn_model.calibrate(
        churn_model.predict_proba(result.estimator, churn_set.split.test),
        {k: str(v) for k, v in result.params.items()},
    )
    np.testing.assert_allclose(served, result.evaluation.y_score)


def test_promotion_compares_two_models_paired_on_the_test_split(
    result: ModelResult, churn_set: TrainingSet
) -> None:
    """Challenger minus champion ROC-AUC on the same resampled accounts: exactly 0 for the
    same model, clearly above 0 against a model ranking backwards (AUC 1 - AUC)."""
    model = result.estimator
    assert paired_outcome(model, model, churn_set) == (0.0, 0.0, 0.0)
    value, low, high = paired_outcome(model, Reversed(model), churn_set)
    auc = score_outcome(model, churn_set)
    assert value == pytest.approx(2 * auc - 1) and 0 < low <= value <= high


def test_held_hazard_is_zero_for_rows_the_simulator_has_no_hazard_for(
    sim: Simulation, churn_set: TrainingSet
) -> None:
    rows = churn_set.split.test.head(3)[["account_id", "as_of"]].copy()
    rows.loc[rows.index[0], "account_id"] = "NO-SUCH-ACCOUNT"
    p = true_churn_for_rows(sim.truth, rows, 90)
    assert p[0] == 0.0
    assert (p[1:] > 0).all() and (p < 1).all()


def test_bare_data_trains_churn_and_names_what_phase_and_next_content_lack(
    sim: Simulation, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """Accounts with only their id and touchpoints without contact or content: churn (from
    purchase and churn events) trains; phase needs stages and next content exposures."""
    prepared = prepare(write_bare_dir(sim.data, tmp_path), taxonomy, n_dates=12)

    churn = load_outcomes()[0]
    result = train_outcome(
        build_set("churn", prepared, taxonomy), churn, params={"n_estimators": 60}
    )

    assert result.metrics["model.roc_auc"] > 0.6
    assert result.metrics["model.roc_auc"] > result.metrics["baseline_recency_logistic.roc_auc"]
    with pytest.raises(TrainingSetError, match="table 'stages' has no CRM phase record"):
        build_set("phase", prepared, taxonomy)
    with pytest.raises(TrainingSetError, match="table 'exposures' is empty"):
        build_set("next-content", prepared, taxonomy)
