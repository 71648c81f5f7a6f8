"""The churn model module: fit, and Platt calibration that survives MLflow params."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import churn as churn_model


def test_calibrate_identity_and_string_params() -> None:
    p = np.array([0.01, 0.2, 0.9])
    np.testing.assert_array_equal(churn_model.calibrate(p, {}), p)
    np.testing.assert_array_equal(churn_model.calibrate(p, churn_model.IDENTITY_CALIBRATION), p)
    # MLflow hands params back as text; a=1, b=log(2) doubles the odds.
    got = churn_model.calibrate(
        np.array([0.2]), {"calibration_a": "1", "calibration_b": str(np.log(2))}
    )
    assert got[0] == pytest.approx(1 / 3)


def test_fit_calibration_recovers_known_platt_parameters() -> None:
    rng = np.random.default_rng(4)
    p_raw = rng.uniform(0.01, 0.5, 200_000)
    logit = np.log(p_raw / (1 - p_raw))
    p_true = 1 / (1 + np.exp(-(0.7 * logit - 0.4)))
    y = (rng.uniform(size=p_raw.size) < p_true).astype(int)
    params = churn_model.fit_calibration(p_raw, y)
    assert params["calibration_a"] == pytest.approx(0.7, abs=0.03)
    assert params["calibration_b"] == pytest.approx(-0.4, abs=0.05)
    assert churn_model.fit_calibration(p_raw[:10], np.zeros(10)) == churn_model.IDENTITY_CALIBRATION


def test_fit_ranks_by_the_signal_feature() -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((4000, 4)), columns=["risk", "n1", "n2", "n3"])
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-(2 * x["risk"] - 2)))).astype(int).to_numpy()
    est = churn_model.fit(
        x.iloc[:3000], y[:3000], x.iloc[3000:], y[3000:], params={"max_features": 1}
    )
    assert list(est.feature_name_) == ["risk"]
    p = churn_model.predict_proba(est, x.iloc[3000:])
    assert np.corrcoef(p, x["risk"].iloc[3000:])[0, 1] > 0.8


def test_fit_needs_both_classes() -> None:
    x = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(churn_model.ChurnModelError, match="all 0"):
        churn_model.fit(x, np.array([0, 0]), x, np.array([0, 1]))


def test_a_raw_booster_predicts_like_the_classifier() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.standard_normal((2000, 3)), columns=["a", "b", "c"])
    y = (x["a"] + rng.standard_normal(2000) > 1).astype(int).to_numpy()
    est = churn_model.fit(x, y, x, y, params={"n_estimators": 30})
    np.testing.assert_allclose(
        churn_model.predict_proba(est.booster_, x), churn_model.predict_proba(est, x)
    )
