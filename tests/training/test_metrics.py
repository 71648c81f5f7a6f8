"""Evaluation metrics on hand-built arrays with answers checkable by eye."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    MetricError,
    average_precision,
    binary_scores,
    bootstrap_auc,
    bootstrap_interval,
    bootstrap_rows,
    class_f1,
    doubly_robust_value,
    expected_calibration_error,
    ips_value,
    lift_at,
    roc_auc,
    snips_value,
    with_intervals,
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


def test_class_f1_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 3])
    accuracy, f1, present = class_f1(y, p, 4)
    assert accuracy == pytest.approx(4 / 7)
    np.testing.assert_allclose(f1, f1_score(y, p, labels=[0, 1, 2, 3], average=None))
    assert present.tolist() == [True, True, True, False]


def test_bootstrap_rows_brackets_a_mean_and_skips_refused_resamples() -> None:
    x = np.arange(100, dtype=float)

    def statistics(rows: np.ndarray) -> dict[str, float] | None:
        return {"mean": float(x[rows].mean())} if rows[0] % 2 == 0 else None

    found = bootstrap_rows(100, statistics, rng=np.random.default_rng(0), n_resamples=200)
    low, high = found["mean"]
    assert 40 < low < 49.5 < high < 60
    with pytest.raises(MetricError, match="no rows"):
        bootstrap_rows(0, statistics, rng=np.random.default_rng(0))
    assert with_intervals({"a.auc": (0.1, 0.2)}) == {"a.auc_ci_low": 0.1, "a.auc_ci_high": 0.2}


def test_bootstrap_on_threads_equals_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.metrics as metrics

    rng = np.random.default_rng(3)
    x, accounts = rng.normal(size=500), rng.integers(0, 60, 500)

    def statistics(rows: np.ndarray) -> dict[str, float] | None:
        if rows[0] % 7 == 0:
            return None  # skipped resamples stay skipped
        return {"mean": float(x[rows].mean()), "q90": float(np.quantile(x[rows], 0.9))}

    def run(threads: int) -> dict[str, tuple[float, float]]:
        monkeypatch.setattr(metrics, "BOOTSTRAP_THREADS", threads)
        return bootstrap_rows(
            500, statistics, rng=np.random.default_rng(5), n_resamples=203, groups=accounts
        )

    # the same draws in the same order whatever the threads: equal intervals
    assert run(3) == run(1) == run(2)


def test_bootstrap_with_groups_resamples_whole_accounts() -> None:
    # 20 accounts with 10 identical rows each: 200 rows, but 20 independent values
    accounts = np.repeat(np.arange(20), 10)
    x = accounts.astype(float)
    seen_sizes: set[int] = set()

    def statistics(rows: np.ndarray) -> dict[str, float]:
        counts = np.bincount(accounts[rows], minlength=20)
        seen_sizes.update(int(c) for c in counts)
        return {"mean": float(x[rows].mean())}

    by_account = bootstrap_rows(
        200, statistics, rng=np.random.default_rng(0), n_resamples=300, groups=accounts
    )
    assert seen_sizes <= {0, 10, 20, 30, 40, 50, 60, 70}  # every account whole or absent
    by_row = bootstrap_rows(200, statistics, rng=np.random.default_rng(0), n_resamples=300)
    width = by_account["mean"][1] - by_account["mean"][0]
    # the standard error of the mean of 20 values (sd 5.8) is 1.3: the interval is about
    # 4 standard errors wide; resampling rows one by one makes it about 3 times narrower
    assert 3.5 < width < 7.0
    assert width > 2.5 * (by_row["mean"][1] - by_row["mean"][0])
    with pytest.raises(MetricError, match="groups has shape"):
        bootstrap_rows(200, statistics, rng=np.random.default_rng(0), groups=accounts[:5])


def test_fast_aucs_equal_scikit_learns_with_ties() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.2).astype(int)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # rounded: many ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    assert np.isnan(roc_auc(np.zeros(3), np.arange(3.0)))
    assert np.isnan(average_precision(np.zeros(3), np.arange(3.0)))


def test_binary_scores_equal_each_metric_exactly_with_ties() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.3).astype(int)
    # rounded scores (many ties) on a resample with repeated rows, as a bootstrap passes
    score = np.round(rng.random(400) + 0.2 * y, 1)
    rows = rng.integers(0, 400, 400)
    found = binary_scores(y[rows], score[rows])
    assert found == {
        "roc_auc": roc_auc(y[rows], score[rows]),
        "pr_auc": average_precision(y[rows], score[rows]),
        "brier": float(np.mean((score[rows] - y[rows]) ** 2)),
        "ece": expected_calibration_error(y[rows], score[rows]),
        "lift_top_decile": lift_at(y[rows], score[rows], share=0.1),
    }
    assert binary_scores([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])["roc_auc"] == 0.75


@pytest.mark.parametrize("clustered", [False, True])
def test_bootstrap_auc_equals_the_sorting_bootstrap(clustered: bool) -> None:
    # Scores rounded to a few levels: ties within and across classes, which the linear-time
    # count must score as the rank sum does (half a win per tied pair).
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(int)
    score = np.round(y * 0.3 + rng.random(400), 1)
    groups = rng.integers(0, 90, 400).astype(str) if clustered else None
    fast = bootstrap_auc(y, score, rng=np.random.default_rng(5), groups=groups)
    slow = bootstrap_interval(
        y, {"m": score}, roc_auc, rng=np.random.default_rng(5), groups=groups
    )["m"]
    assert fast == pytest.approx(slow, abs=1e-12)
    assert fast[0] < roc_auc(y, score) < fast[1]


def test_bootstrap_auc_of_one_class_is_nan() -> None:
    low, high = bootstrap_auc([1, 1, 1], [0.1, 0.2, 0.3], rng=np.random.default_rng(0))
    assert np.isnan(low) and np.isnan(high)
