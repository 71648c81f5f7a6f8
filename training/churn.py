"""Train and evaluate the churn model against the recency baseline and the simulator's truth.

``train_churn`` fits ``models.churn`` on a churn :class:`~training.datasets.TrainingSet`,
calibrates it on the validation split (Platt scaling, kept only when it lowers the validation
calibration error) and returns a :class:`~training.result.ModelResult` with ROC-AUC, PR-AUC,
Brier score, expected calibration error and top-decile lift on the test split, beside the
recency-only logistic regression and, with simulator truth, the ceiling: the same metrics of
the simulator's true churn probabilities on the same rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.errors import InvalidInputError
from features.simulate.truth import SimulationTruth, true_churn_probability
from features.taxonomy import Taxonomy
from models import churn as churn_model
from training.baselines import RecencyLogistic
from training.datasets import ModelSplits, TrainingSet, features_and_labels, model_splits
from training.metrics import expected_calibration_error, lift_at
from training.phase import feature_importance_csv, metrics_table
from training.plots import calibration_table
from training.result import Evaluation, ModelResult

PRIMARY_METRIC = "model.roc_auc"


class ChurnTrainingError(InvalidInputError):
    """The churn model cannot be trained or evaluated on this training set."""


def churn_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, expected calibration error (10
    equal-count bins) and lift in the top decile of ``p`` for 0/1 outcomes ``y``. AUCs are
    NaN when ``y`` has one class only."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_at(y, p, share=0.1),
        "positive_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
    }


def true_churn_for_rows(
    truth: SimulationTruth, rows: pd.DataFrame, horizon_days: int
) -> np.ndarray:
    """The simulator's churn probability within the horizon for each (account_id, as_of) row;
    0 where the simulator has no customer hazard for the account at that date (it could not
    churn)."""
    dates = list(pd.DatetimeIndex(rows["as_of"].unique()))
    p = true_churn_probability(truth, dates, horizon_days=horizon_days)
    p = p.assign(account_id=p["account_id"].astype(str))
    p["as_of"] = pd.to_datetime(p["as_of"], utc=True).dt.as_unit("ns")
    keys = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"], utc=True).dt.as_unit("ns").to_numpy(),
        }
    )
    merged = keys.merge(p, on=["account_id", "as_of"], how="left", validate="many_to_one")
    return merged["p_churn"].fillna(0.0).to_numpy(dtype=np.float64)


def _validation_calibration(estimator: Any, s: ModelSplits) -> dict[str, float]:
    """Platt-scaling params fitted on the validation split, or the identity when they do
    not lower the validation calibration error."""
    # Kept only if it helps on validation: test is where it is judged.
    p_valid_raw = churn_model.predict_proba(estimator, s.x_valid)
    calibration = churn_model.fit_calibration(p_valid_raw, s.y_valid)
    if expected_calibration_error(
        s.y_valid, churn_model.calibrate(p_valid_raw, calibration)
    ) >= expected_calibration_error(s.y_valid, p_valid_raw):
        calibration = dict(churn_model.IDENTITY_CALIBRATION)
    return calibration


def _scores(
    estimator: Any,
    calibration: dict[str, float],
    ts: TrainingSet,
    s: ModelSplits,
    truth: SimulationTruth | None,
) -> dict[str, np.ndarray]:
    """Churn probabilities of the test rows per scorer: the calibrated and the raw model, the
    recency baseline (fitted on the training split) and, with ``truth``, the ceiling."""
    p_raw = churn_model.predict_proba(estimator, s.x_test)
    baseline = RecencyLogistic().fit(ts.split.train, s.y_train)
    scores = {
        "model": churn_model.calibrate(p_raw, calibration),
        "model_uncalibrated": p_raw,
        "baseline_recency_logistic": baseline.predict_proba(s.test),
    }
    if truth is not None:
        scores["ceiling"] = true_churn_for_rows(truth, s.test, ts.horizon_days)
    return scores


def _artifacts(
    y_test: np.ndarray, p_model: np.ndarray, calibration: dict[str, float], importance: str
) -> dict[str, str]:
    """The run's extra artifacts: the model's calibration curve on test, the calibration
    params as JSON and the feature importance CSV."""
    curve = calibration_table(y_test, p_model, n_bins=10, strategy="quantile")
    return {
        "calibration_curve.csv": curve.to_csv(index=False),
        "calibration.json": json.dumps(calibration),
        "feature_importance.csv": importance,
    }


def _run_params(
    params: dict[str, Any] | None,
    calibration: dict[str, float],
    estimator: Any,
    ts: TrainingSet,
    s: ModelSplits,
) -> dict[str, Any]:
    """The run's params: the model's merged params, the calibration params, then the
    iteration early stopping kept, the horizon and the row and feature counts."""
    merged = churn_model.merged_params(params)
    return {
        **merged,
        **calibration,
        "best_iteration": int(estimator.best_iteration_ or merged["n_estimators"]),
        "horizon_days": ts.horizon_days,
        "n_train_rows": len(s.x_train),
        "n_valid_rows": len(s.x_valid),
        "n_test_rows": len(s.x_test),
        "n_features": len(churn_model.model_columns(estimator)),
    }


def train_churn(
    ts: TrainingSet,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    taxonomy: Taxonomy | None = None,
    client: Any | None = None,
) -> ModelResult:
    """The result of fitting the churn model on ``ts``'s training split (early stopping on
    validation), calibrating it on validation and evaluating model, recency baseline and
    (with ``truth``) the ceiling on the test split.

    ``ModelResult.params`` holds ``calibration_a``/``calibration_b``: serving applies
    ``models.churn.calibrate(estimator.predict_proba(x)[:, 1], params)``. The primary metric
    is ``model.roc_auc``. ``taxonomy`` is accepted for a uniform signature.
    """
    del taxonomy
    s = model_splits(ts)
    estimator = churn_model.fit(
        s.x_train, s.y_train, s.x_valid, s.y_valid, params=params, client=client
    )
    used = churn_model.model_columns(estimator)
    calibration = _validation_calibration(estimator, s)
    scores = _scores(estimator, calibration, ts, s, truth)
    metrics = {
        f"{who}.{k}": v for who, p in scores.items() for k, v in churn_metrics(s.y_test, p).items()
    }
    title = (
        f"churn model ({len(s.test)} test rows, {int(s.y_test.sum())} churned within "
        f"{ts.horizon_days} days)"
    )
    return ModelResult(
        name="churn",
        estimator=estimator,
        feature_columns=used,
        params=_run_params(params, calibration, estimator, ts, s),
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=metrics_table(metrics, title),
        evaluation=Evaluation(y_true=s.y_test, y_score=scores["model"]),
        input_example=s.x_test[used].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts=_artifacts(
            s.y_test, scores["model"], calibration, feature_importance_csv(estimator, used)
        ),
    )


def score_churn(estimator: Any, ts: TrainingSet) -> float:
    """ROC-AUC on ``ts``'s test split (the primary metric promotion compares; calibration
    is monotone and does not change it)."""
    x_test, y_test = features_and_labels(ts, ts.split.test)
    if len(np.unique(y_test)) < 2:
        raise ChurnTrainingError(
            f"training set {ts.name!r} test split has {len(y_test)} rows of one class; "
            "expected churners and non-churners to score ROC-AUC"
        )
    return float(roc_auc_score(y_test, churn_model.predict_proba(estimator, x_test)))
