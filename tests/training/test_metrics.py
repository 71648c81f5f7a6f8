"""Evaluation metrics on hand-built arrays with answers checkable by eye."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    MetricError,
    doubly_robust_value,
    expected_calibration_error,
    ips_value,
    lift_at,
    snips_value,
)


def test_calibration_error_zero_when_rates_match() -> None:
    y = [0, 1, 0, 1, 1, 1]
    p = [0.5, 0.5, 0.5, 0.5, 1.0, 1.0]
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(1 / 6)
    assert expected_calibration_error([0, 1, 1, 1], [0.5, 0.5, 1, 1], bins=2) == 0.0


def test_calibration_error_of_overconfident_model() -> None:
    # predicts 0.9 where the rate is 0.5
    assert expected_calibration_error([0, 1], [0.9, 0.9], bins=1) == pytest.approx(0.4)


def test_lift() -> None:
    y = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    score = [0.9, 0.1, 0.2, 0.1, 0.1, 0.3, 0.2, 0.1, 0.1, 0.05]
    assert lift_at(y, score, share=0.1) == pytest.approx(5.0)  # top row is positive, base 0.2


def test_off_policy_estimators() -> None:
    reward = np.array([1.0, 0.0, 1.0, 0.0])
    mu = np.array([0.5, 0.5, 0.25, 0.25])
    pi = np.array([1.0, 0.0, 1.0, 1.0])
    assert ips_value(reward, mu, pi) == pytest.approx((2 + 0 + 4 + 0) / 4)
    assert snips_value(reward, mu, pi) == pytest.approx(6 / 10)
    q = np.array([0.5, 0.5, 0.5, 0.5])
    # with a constant reward model, DR = q + IPS residuals
    assert doubly_robust_value(reward, mu, pi, q, q) == pytest.approx(
        0.5 + np.mean(pi / mu * (reward - q))
    )


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(MetricError, match="outside"):
        ips_value([1.0], [0.0], [1.0])
    with pytest.raises(MetricError, match="one value per row"):
        lift_at([1, 0], [0.5])
    with pytest.raises(MetricError, match="NaN"):
        expected_calibration_error([1.0, float("nan")], [0.5, 0.5])
    with pytest.raises(MetricError, match="no rows"):
        expected_calibration_error([], [])
