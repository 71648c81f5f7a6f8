"""The next-content classifier: parameters, fitting with early stopping, P(response)."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.fitting import fit_classifier, model_frame
from models.next_content.errors import NextContentModelError

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 2000,
    # 0.06 and 50 rounds of patience: half the trees of 0.03 and 100, which the policy's
    # evaluation pays for again on every eligible item of every test decision.
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 5.0,
    "max_bin": 63,
    "n_jobs": 2,
    "random_state": 7,
    "verbose": -1,
    "early_stopping_rounds": 50,
    # Not a LightGBM parameter: the share of non-responses fit() keeps (1 = all). Kept ones
    # weigh 1 / share, so the predicted probabilities stay unbiased; with about 3 %
    # responses a quarter of the rest keeps ~27 % of the rows.
    "negative_sample": 0.25,
}


def merged_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULT_PARAMS`` updated with ``params`` (overrides win)."""
    return {**DEFAULT_PARAMS, **(params or {})}


def fit(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    *,
    params: dict[str, Any] | None = None,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """A binary ``LGBMClassifier`` fitted on the training exposures with early stopping on
    the validation exposures (binary logloss, all of them). Labels are 0/1; both must occur
    in training. The ``negative_sample`` share of the training non-responses is kept (a
    seeded draw) and weighted by its inverse. ``client`` (a Dask client) grows the trees on
    its cluster."""
    if len(x_train) == 0 or len(x_valid) == 0:
        raise NextContentModelError(
            f"next-content model needs training and validation rows, got {len(x_train)} and "
            f"{len(x_valid)}"
        )
    if len(np.unique(y_train)) < 2:
        raise NextContentModelError(
            f"response labels in training are all {int(np.asarray(y_train)[0])}; expected "
            "responses and non-responses"
        )
    p = merged_params(params)
    rounds = int(p.pop("early_stopping_rounds"))
    share = float(p.pop("negative_sample"))
    if not 0 < share <= 1:
        raise NextContentModelError(f"negative_sample={share}: expected a share in (0, 1]")
    y_train = np.asarray(y_train)
    weight = None
    if share < 1:
        rng = np.random.default_rng(int(p.get("random_state", 0)))
        keep = (y_train == 1) | (rng.random(len(y_train)) < share)
        x_train, y_train = x_train.iloc[np.nonzero(keep)[0]], y_train[keep]
        weight = np.where(y_train == 1, 1.0, 1.0 / share)
    return fit_classifier(
        p,
        x_train,
        y_train,
        x_valid,
        y_valid,
        early_stopping_rounds=rounds,
        client=client,
        sample_weight=weight,
    )


def predict_proba(estimator: Any, x: pd.DataFrame) -> np.ndarray:
    """P(response within the window), one per row of ``x`` (the model's feature columns)."""
    return np.asarray(estimator.predict_proba(model_frame(estimator, x)))[:, 1].astype(np.float64)
