"""The binary outcome model: will the outcome happen within the horizon after as-of?

Every binary outcome declared in ``models.outcomes`` (churn, the default, and repurchase,
conversion, dropout, ...) uses this one model; the outcome defines the rows and the target
(``training.outcome_sets``): for churn, 1 when a customer at as-of (purchased and not churned
since; ``is_customer == 1``) has a churn event in ``[as_of, as_of + 90 days)``.
Binary LightGBM on every pipeline feature, early-stopped on the validation split, then
calibrated: Platt scaling on the logit, fitted on the validation split, stored as two numbers
in the run's params (``calibration_a``, ``calibration_b``) so that a model loaded with MLflow's
LightGBM flavor is calibrated by :func:`calibrate` in serving the same way.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.errors import InvalidInputError
from features.pipeline import feature_definitions
from features.taxonomy import Taxonomy
from models.contract import CALIBRATION_A, CALIBRATION_B
from models.fitting import fit_classifier, model_frame, select_features

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 600,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 100,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 5.0,
    "max_bin": 63,
    "n_jobs": 2,  # fits of fewer rows run on one (models.fitting.THREADED_FIT_ROWS)
    "random_state": 7,
    "verbose": -1,
    "early_stopping_rounds": 50,
    # Not a LightGBM parameter: keep the features a quick model ranks highest (0 = all).
    "max_features": 80,
}
SELECTION_ROWS = 50_000
SELECTION_ROUNDS = 40
# Identity calibration: calibrate(p, IDENTITY) == p.
IDENTITY_CALIBRATION: dict[str, float] = {CALIBRATION_A: 1.0, CALIBRATION_B: 0.0}
_EPS = 1e-6


class ChurnModelError(InvalidInputError):
    """The churn model cannot be fitted or applied to these inputs."""


def feature_columns(
    taxonomy: Taxonomy, attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
) -> list[str]:
    """The features the churn model uses: every pipeline feature (with those of the declared
    custom ``attributes``), in pipeline order."""
    return list(feature_definitions(taxonomy, attributes))


def merged_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULT_PARAMS`` updated with ``params`` (overrides win)."""
    return {**DEFAULT_PARAMS, **(params or {})}


def fit(
    x_train: Any,
    y_train: Any,
    x_valid: Any,
    y_valid: Any,
    *,
    params: dict[str, Any] | None = None,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """A binary ``LGBMClassifier`` fitted on the training rows with early stopping on the
    validation rows (binary logloss). Labels are 0/1; both must occur in training. Rows
    may be Dask frames on ``client``'s workers (``models.fitting.fit_classifier``): the
    features are then selected on a seeded sample of up to ``SELECTION_ROWS`` training
    rows gathered from them."""
    p = merged_params(params)
    rounds = int(p.pop("early_stopping_rounds"))
    max_features = int(p.pop("max_features"))
    rng = np.random.default_rng(int(p.get("random_state", 0)))
    if hasattr(x_train, "map_partitions"):
        n_rows = int(y_train.shape[0].compute())
        share = min(1.0, SELECTION_ROWS / max(n_rows, 1))
        seed = int(p.get("random_state", 0))
        sample = x_train.assign(_y=y_train).sample(frac=share, random_state=seed).compute()
        columns = select_features(
            sample.drop(columns="_y"),
            sample["_y"].to_numpy(),
            p,
            max_features,
            rng,
            rows=SELECTION_ROWS,
            rounds=SELECTION_ROUNDS,
        )
    else:
        if len(x_train) == 0 or len(x_valid) == 0:
            raise ChurnModelError(
                "binary outcome model needs training and validation rows, got "
                f"{len(x_train)} and {len(x_valid)}"
            )
        if len(np.unique(y_train)) < 2:
            raise ChurnModelError(
                f"labels in training are all {int(y_train[0])}; expected positives and negatives"
            )
        columns = select_features(
            x_train, y_train, p, max_features, rng, rows=SELECTION_ROWS, rounds=SELECTION_ROUNDS
        )
    return fit_classifier(
        p,
        x_train[columns],
        y_train,
        x_valid[columns],
        y_valid,
        early_stopping_rounds=rounds,
        client=client,
    )


def predict_proba(estimator: Any, x: pd.DataFrame) -> np.ndarray:
    """Uncalibrated P(churn within the horizon), one per row (pass through
    :func:`calibrate` with the run's calibration params). ``x`` may hold more columns than
    the estimator uses; it picks its own (:func:`model_columns`)."""
    x = model_frame(estimator, x)
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(x))[:, 1].astype(np.float64)
    return np.asarray(estimator.predict(x), dtype=np.float64)  # a Booster gives P(1)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def fit_calibration(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Platt parameters ``{calibration_a, calibration_b}`` such that
    ``sigmoid(a * logit(p) + b)`` fits the 0/1 outcomes ``y`` (maximum likelihood, a few
    Newton steps). Returns the identity when ``y`` has a single class."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        return dict(IDENTITY_CALIBRATION)
    z = _logit(np.asarray(p, dtype=np.float64))
    design = np.column_stack([z, np.ones_like(z)])
    w = np.array([1.0, 0.0])
    for _ in range(50):
        q = expit(design @ w)
        grad = design.T @ (q - y)
        hess = (design * (q * (1 - q))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return {CALIBRATION_A: float(w[0]), CALIBRATION_B: float(w[1])}


def calibrate(p: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(a * logit(p) + b)`` with ``a = calibration_a`` and
    ``b = calibration_b`` from ``params`` (a run's logged params; strings are accepted, as
    MLflow returns params as text). Missing parameters mean the identity."""
    a = float(params.get(CALIBRATION_A, 1.0))
    b = float(params.get(CALIBRATION_B, 0.0))
    if a == 1.0 and b == 0.0:
        return np.asarray(p, dtype=np.float64)
    return expit(a * _logit(np.asarray(p, dtype=np.float64)) + b)
