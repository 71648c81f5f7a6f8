"""The phase model module: fit with early stopping, feature selection, full-width output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.taxonomy import load_taxonomy
from models import phase as phase_model
from models.fitting import model_columns


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.standard_normal((n, 6)), columns=[f"f{i}" for i in range(6)])
    # Class from the sign pattern of f0, f1 only; f2..f5 are noise.
    y = (x["f0"] > 0).astype(int) + 2 * (x["f1"] > 0).astype(int)
    return x, y.to_numpy()


def test_feature_columns_are_the_pipeline_features() -> None:
    columns = phase_model.feature_columns(load_taxonomy())
    assert "crm_phase" in columns and "is_customer" in columns
    assert len(columns) == len(set(columns)) > 300


def test_fit_selects_informative_features_and_predicts_every_class() -> None:
    x, y = _data(3000, 1)
    xv, yv = _data(1000, 2)
    est = phase_model.fit(
        x,
        y,
        xv,
        yv,
        n_classes=5,
        params={"max_features": 2, "n_estimators": 60, "colsample_bytree": 1.0},
    )
    assert list(est.feature_name_) == ["f0", "f1"]
    proba = phase_model.predict_proba(est, xv, n_classes=5)
    assert proba.shape == (1000, 5)
    assert (proba[:, 4] == 0).all()  # class 4 never seen in training
    assert (proba.argmax(axis=1) == yv).mean() > 0.95
    assert est.best_iteration_ <= 60


def test_default_params_are_overridable() -> None:
    merged = phase_model.merged_params({"learning_rate": 0.3})
    assert merged["learning_rate"] == 0.3
    assert merged["objective"] == "multiclass"
    assert phase_model.DEFAULT_PARAMS["learning_rate"] != 0.3


def test_fit_rejects_labels_outside_the_classes() -> None:
    x, y = _data(100, 1)
    with pytest.raises(phase_model.PhaseModelError, match="outside 0..2"):
        phase_model.fit(x, y, x, y, n_classes=3)


def test_a_raw_booster_predicts_like_the_classifier() -> None:
    # MLflow's lightgbm flavor may hand back a Booster; predictions must not change.
    x, y = _data(2000, 3)
    est = phase_model.fit(x, y, x, y, n_classes=4, params={"n_estimators": 20})
    booster_p = phase_model.predict_proba(est.booster_, x, n_classes=4)
    np.testing.assert_allclose(booster_p, phase_model.predict_proba(est, x, n_classes=4))
    assert model_columns(est.booster_) == model_columns(est)
