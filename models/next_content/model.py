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
    # 0.06 with 50 rounds' patience: at 100,000 accounts half the fit and scoring time of
    # 0.03 with 100, the same ROC-AUC and true policy value (0.7543 vs 0.7545, 0.0828 vs 0.0827)
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
}


# Below this many training rows the trees are smaller and learn slower. Early stopping on a
# few hundred validation responses stops a 0.06 model after 17-50 trees, and 31-leaf trees
# fit noise there; the truth is close to additive in the logit (fit, topic, fatigue). Share
# of the true oracle's value the top-1 policy reaches (bench/quality_next_content, seeds 7
# and 8): 600 accounts (6,200 rows) 0.746 / 0.808 with DEFAULT_PARAMS, 0.804 / 0.842 with
# these; 3,000 accounts 0.831 / 0.831 -> 0.853 / 0.858; at 20,000 accounts (200,000 rows)
# both reach 0.88, and DEFAULT_PARAMS in a ninth of the trees. Extremely randomized splits
# (``extra_trees``: one random threshold per feature) lower the variance further where the
# responses are a few hundred: at 600 accounts, seeds 7 / 8 / 9, 0.804 / 0.842 / 0.842 ->
# 0.839 / 0.872 / 0.865; at 3,000 accounts 0.853 / 0.858 -> 0.853 / 0.856 (ROC-AUC +0.005 /
# +0.003).
SMALL_DATA_ROWS = 100_000
SMALL_DATA_PARAMS: dict[str, Any] = {
    "num_leaves": 7,
    "learning_rate": 0.03,
    "early_stopping_rounds": 100,
    "extra_trees": True,
}


def merged_params(
    params: dict[str, Any] | None = None, *, rows: int | None = None
) -> dict[str, Any]:
    """``DEFAULT_PARAMS`` updated with ``SMALL_DATA_PARAMS`` when the model trains on fewer
    than ``SMALL_DATA_ROWS`` ``rows``, then with ``params`` (overrides win)."""
    small = SMALL_DATA_PARAMS if rows is not None and rows < SMALL_DATA_ROWS else {}
    return {**DEFAULT_PARAMS, **small, **(params or {})}


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
    the validation exposures (binary logloss). Labels are 0/1; both must occur in training.
    ``client`` (a Dask client) grows the trees on its cluster."""
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
    p = merged_params(params, rows=len(x_train))
    rounds = int(p.pop("early_stopping_rounds"))
    return fit_classifier(
        p, x_train, y_train, x_valid, y_valid, early_stopping_rounds=rounds, client=client
    )


def refit(
    x: pd.DataFrame, y: np.ndarray, *, fitted: dict[str, Any], rounds: int
) -> lgb.LGBMClassifier:
    """A model of the parameters a :func:`fit` used (``fitted``: :func:`merged_params` of
    its training rows, so the learning rate matches the tree count) fitted again on ``x``
    (every split) with the ``rounds`` trees early stopping chose, without a validation set:
    what a model trained on a served log registers (``training.next_content``)."""
    if len(np.unique(y)) < 2:
        raise NextContentModelError(
            f"response labels to refit on are all {int(np.asarray(y)[0])}; expected "
            "responses and non-responses"
        )
    p = {k: v for k, v in fitted.items() if k != "early_stopping_rounds"}
    p["n_estimators"] = max(int(rounds), 1)
    return fit_classifier(p, x, y, None, None, early_stopping_rounds=None)


def predict_proba(estimator: Any, x: pd.DataFrame) -> np.ndarray:
    """P(response within the window), one per row of ``x`` (the model's feature columns)."""
    return np.asarray(estimator.predict_proba(model_frame(estimator, x)))[:, 1].astype(np.float64)
