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
from training.datasets import TrainingSet
from training.metrics import expected_calibration_error, lift_at
from training.phase import metrics_table
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


def _xy(ts: TrainingSet, part: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return part[ts.feature_columns], part[ts.label_column].to_numpy(dtype=np.int64)


def train_churn(
    ts: TrainingSet,
    *,
    params: dict[str, Any] | None = None,
    truth: SimulationTruth | None = None,
    taxonomy: Taxonomy | None = None,
    client: Any | None = None,
) -> ModelResult:
    """Fit the churn model on ``ts``'s training split (early stopping on validation),
    calibrate it on validation and evaluate model, recency baseline and (with ``truth``) the
    ceiling on the test split.

    ``ModelResult.params`` holds ``calibration_a``/``calibration_b``: serving applies
    ``models.churn.calibrate(estimator.predict_proba(x)[:, 1], params)``. The primary metric
    is ``model.roc_auc``. ``taxonomy`` is accepted for a uniform signature.
    """
    del taxonomy
    x_train, y_train = _xy(ts, ts.split.train)
    x_valid, y_valid = _xy(ts, ts.split.valid)
    test = ts.split.test
    x_test, y_test = _xy(ts, test)
    if len(x_test) == 0:
        raise ChurnTrainingError(f"training set {ts.name!r} has no test rows")
    merged = churn_model.merged_params(params)
    estimator = churn_model.fit(x_train, y_train, x_valid, y_valid, params=params, client=client)
    used = churn_model.model_columns(estimator)

    # Calibrate on validation; keep it only if it helps there (it is judged on test).
    p_valid_raw = churn_model.predict_proba(estimator, x_valid)
    calibration = churn_model.fit_calibration(p_valid_raw, y_valid)
    if expected_calibration_error(
        y_valid, churn_model.calibrate(p_valid_raw, calibration)
    ) >= expected_calibration_error(y_valid, p_valid_raw):
        calibration = dict(churn_model.IDENTITY_CALIBRATION)
    p_raw = churn_model.predict_proba(estimator, x_test)
    p_model = churn_model.calibrate(p_raw, calibration)

    baseline = RecencyLogistic().fit(ts.split.train, y_train)
    scores = {
        "model": p_model,
        "model_uncalibrated": p_raw,
        "baseline_recency_logistic": baseline.predict_proba(test),
    }
    if truth is not None:
        scores["ceiling"] = true_churn_for_rows(truth, test, ts.horizon_days)
    metrics: dict[str, float] = {}
    for who, p in scores.items():
        metrics.update({f"{who}.{k}": v for k, v in churn_metrics(y_test, p).items()})

    artifacts = {
        "calibration_curve.csv": calibration_table(
            y_test, p_model, n_bins=10, strategy="quantile"
        ).to_csv(index=False),
        "calibration.json": json.dumps(calibration),
        "feature_importance.csv": pd.DataFrame(
            {
                "feature": used,
                "gain": estimator.booster_.feature_importance(importance_type="gain"),
            }
        )
        .sort_values("gain", ascending=False)
        .to_csv(index=False),
    }
    title = (
        f"churn model ({len(test)} test rows, {int(y_test.sum())} churned within "
        f"{ts.horizon_days} days)"
    )
    report = metrics_table(metrics, title)
    run_params = {
        **merged,
        **calibration,
        "best_iteration": int(estimator.best_iteration_ or merged["n_estimators"]),
        "horizon_days": ts.horizon_days,
        "n_train_rows": len(x_train),
        "n_valid_rows": len(x_valid),
        "n_test_rows": len(x_test),
        "n_features": len(used),
    }
    return ModelResult(
        name="churn",
        estimator=estimator,
        feature_columns=used,
        params=run_params,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC,
        report_markdown=report,
        evaluation=Evaluation(y_true=y_test, y_score=p_model),
        input_example=x_test[used].head(5).reset_index(drop=True),
        training_set_fingerprint=ts.fingerprint,
        as_of_dates=ts.as_of_dates,
        extra_artifacts=artifacts,
    )


def score_churn(estimator: Any, ts: TrainingSet) -> float:
    """ROC-AUC on ``ts``'s test split (the primary metric promotion compares; calibration
    is monotone and does not change it)."""
    x_test, y_test = _xy(ts, ts.split.test)
    if len(np.unique(y_test)) < 2:
        raise ChurnTrainingError(
            f"training set {ts.name!r} test split has {len(y_test)} rows of one class; "
            "expected churners and non-churners to score ROC-AUC"
        )
    return float(roc_auc_score(y_test, churn_model.predict_proba(estimator, x_test)))
