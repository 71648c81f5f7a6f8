"""Quality plots: the tables behind them are exact; figures render to PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest

from training.plots import (
    PlotInputError,
    calibration_table,
    confusion_table,
    feature_importance,
    gains_table,
    plot_calibration_curve,
    plot_confusion_matrix,
    plot_cumulative_gains,
    plot_feature_importance,
)


def test_confusion_table_counts_and_shares() -> None:
    table = confusion_table(["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c"])
    assert table.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    shares = confusion_table(["a", "a"], ["a", "b"], ["a", "b"], normalize=True)
    assert shares.to_numpy().tolist() == [[0.5, 0.5], [0.0, 0.0]]


def test_calibration_table_bins() -> None:
    table = calibration_table([0, 1, 1, 1], [0.1, 0.2, 0.9, 1.0], n_bins=2)
    assert table["count"].tolist() == [2, 2]
    assert table["observed_rate"].tolist() == [0.5, 1.0]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.95])
    with pytest.raises(PlotInputError, match="outside"):
        calibration_table([0, 1], [0.5, 1.5])


def test_gains_table_takes_ties_together() -> None:
    table = gains_table([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    assert table["targeted"].tolist() == [0.0, 0.25, 0.75, 1.0]
    assert table["captured"].tolist() == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(PlotInputError, match="binary"):
        gains_table([2, 0], [0.1, 0.2])


def test_figures_render_to_png() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
    importance = feature_importance(model)
    assert importance.index[0] == "Column_0"
    p = model.predict_proba(x)[:, 1]
    figures = [
        plot_confusion_matrix(y, (p > 0.5).astype(int), labels=[0, 1]),
        plot_calibration_curve(y, p),
        plot_cumulative_gains(y, {"model": p, "random": rng.random(200)}),
        plot_feature_importance(importance),
    ]
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:4] == b"\x89PNG"
