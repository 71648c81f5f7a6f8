"""The phase model: which journey phase an account is in at as-of.

Target: the hindsight phase at as-of (``training.hindsight.label_phase_hindsight``): the CRM
history and the purchase and churn touchpoints up to ``as_of + 60 days`` read as a whole,
which places the phases the CRM recorded late, skipped or never recorded (most early phases)
and the deals it lost without a record; classes are the taxonomy's default phases the CRM
records (at least two). Multiclass LightGBM (binary with two) on every pipeline feature; the
last CRM record before as-of (``crm_phase``) is an input, because a real CRM has it too.
Features see only events before as-of; only the label looks forward. The simulator's true
phase is never an input; it is only used to evaluate.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.attributes import NO_FITTED_ATTRIBUTES, FittedAttributes
from features.errors import InvalidInputError
from features.pipeline import feature_definitions
from features.taxonomy import Taxonomy
from models.fitting import fit_classifier, model_frame, select_features

LABEL_COLUMN = "phase_label"
TARGET = (
    "journey phase at as-of in hindsight: the CRM history and purchase/churn touchpoints up "
    "to as_of + 60 days read as a whole (exact starts at purchases and churns, stale buying "
    "phases lost, skipped phases back-filled); classes = the taxonomy's default phases the "
    "CRM records"
)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "n_estimators": 400,
    "learning_rate": 0.15,
    "num_leaves": 31,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "max_bin": 63,
    "n_jobs": 2,  # fits of fewer rows run on one (models.fitting.THREADED_FIT_ROWS)
    "random_state": 7,
    "verbose": -1,
    "early_stopping_rounds": 30,
    # Not LightGBM parameters: how fit() keeps training fast at 100k accounts (see there).
    "max_features": 80,
    "max_train_rows": 300_000,
}
# Rows of the quick model that ranks features for selection.
SELECTION_ROWS = 20_000
SELECTION_ROUNDS = 25


class PhaseModelError(InvalidInputError):
    """The phase model cannot be fitted or applied to these inputs."""


def feature_columns(
    taxonomy: Taxonomy, attributes: FittedAttributes = NO_FITTED_ATTRIBUTES
) -> list[str]:
    """The features the phase model uses: every pipeline feature (with those of the declared
    custom ``attributes``), in pipeline order."""
    return list(feature_definitions(taxonomy, attributes))


def merged_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULT_PARAMS`` updated with ``params`` (overrides win)."""
    return {**DEFAULT_PARAMS, **(params or {})}


def fit(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    *,
    n_classes: int,
    params: dict[str, Any] | None = None,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """An ``LGBMClassifier`` fitted on the training rows with early stopping on the validation
    rows (multi-logloss; binary log loss when the training rows hold two classes). Labels are
    integer codes ``0 .. n_classes - 1``; each split must hold at least two of them.

    Two knobs keep it fast without costing accuracy (measured at 20k accounts: macro-F1
    within 0.005 of all features and rows, 8x faster): ``max_features`` keeps the features a
    quick model on ``SELECTION_ROWS`` training rows ranks highest by gain (0 = all), and
    ``max_train_rows`` caps the training rows by a seeded random sample (0 = all).
    Returns the fitted estimator; it takes exactly the columns ``estimator.feature_name_``
    (apply it with :func:`predict_proba`, which selects them).
    """
    if len(x_train) == 0 or len(x_valid) == 0:
        raise PhaseModelError(
            f"phase model needs training and validation rows, got {len(x_train)} and {len(x_valid)}"
        )
    bad = (y_train < 0) | (y_train >= n_classes)
    if bad.any():
        raise PhaseModelError(
            f"phase labels {np.unique(y_train[bad])[:5].tolist()} outside 0..{n_classes - 1}"
        )
    for split, y in (("training", y_train), ("validation", y_valid)):
        seen = np.unique(y)
        if len(seen) < 2:
            raise PhaseModelError(
                f"the {split} split holds one phase class only ({seen.tolist()}); expected at "
                "least 2 (more as-of dates or a longer CRM history)"
            )
    p = merged_params(params)
    if len(np.unique(y_train)) == 2:
        # Two recorded phases (a CRM with lead -> won): LightGBM's multiclass objective
        # needs a class count, the binary one answers the same question.
        p["objective"] = "binary"
    rounds = int(p.pop("early_stopping_rounds"))
    max_features = int(p.pop("max_features"))
    max_rows = int(p.pop("max_train_rows"))
    rng = np.random.default_rng(int(p.get("random_state", 0)))
    if max_rows and len(x_train) > max_rows:
        keep = np.sort(rng.choice(len(x_train), size=max_rows, replace=False))
        x_train, y_train = x_train.iloc[keep], y_train[keep]
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


def predict_proba(estimator: Any, x: pd.DataFrame, *, n_classes: int) -> np.ndarray:
    """Phase probabilities, shape ``(len(x), n_classes)`` in class-code order; a class the
    estimator never saw in training gets probability 0. ``x`` may hold more columns than the
    estimator uses; it picks its own (:func:`model_columns`)."""
    x = model_frame(estimator, x)
    if hasattr(estimator, "predict_proba"):
        raw = np.asarray(estimator.predict_proba(x))
        classes = np.asarray(estimator.classes_, dtype=np.int64)
    else:  # a Booster predicts every class it was trained with, in code order
        raw = np.asarray(estimator.predict(x))
        if raw.ndim == 1:  # a binary booster answers P(class 1) only
            raw = np.column_stack([1.0 - raw, raw])
        classes = np.arange(raw.shape[1], dtype=np.int64)
    out = np.zeros((len(x), n_classes), dtype=np.float64)
    out[:, classes] = raw
    return out
