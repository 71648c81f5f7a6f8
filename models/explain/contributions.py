"""Feature contributions of a LightGBM model (``pred_contrib=True``), per class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.explain.errors import ExplainError
from models.fitting import model_columns


def contributions_for(
    estimator: Any, x: pd.DataFrame | np.ndarray, *, class_index: int | None = None
) -> np.ndarray:
    """Feature contributions, shape ``(len(x), n_features + 1)`` (last column: the bias),
    for an ``LGBMClassifier`` or a ``lightgbm.Booster``. A DataFrame ``x`` may hold more
    columns than the model uses; they are selected by name. For a multiclass model
    ``class_index`` (the position of the class in ``predict_proba``'s columns) picks the
    class; it is required there and ignored for binary models."""
    booster = getattr(estimator, "booster_", estimator)
    if isinstance(x, pd.DataFrame):
        x = x[model_columns(estimator)]
    raw = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None, :]
    n_features = booster.num_feature()
    width = n_features + 1
    n_classes = raw.shape[1] // width
    if raw.shape[1] != n_classes * width:
        raise ExplainError(
            f"pred_contrib returned {raw.shape[1]} columns for {n_features} features; expected "
            "a multiple of n_features + 1"
        )
    if n_classes == 1:
        return raw
    if class_index is None:
        raise ExplainError(
            f"the model has {n_classes} classes; pass class_index (0..{n_classes - 1})"
        )
    if not 0 <= class_index < n_classes:
        raise ExplainError(f"class_index {class_index} is outside 0..{n_classes - 1}")
    return raw[:, class_index * width : (class_index + 1) * width]
