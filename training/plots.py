"""Quality plots logged with every training run, and the tables they draw.

Each ``plot_*`` function is pure: it takes arrays, returns a new ``matplotlib.figure.Figure``
drawn on the Agg canvas, and touches no pyplot state, so it is safe in a CLI, a test or a
worker thread. The ``*_table`` functions return the numbers behind a plot, for the quality
report and for tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from features.errors import InvalidInputError

Curves = ArrayLike | Mapping[str, ArrayLike]


class PlotInputError(InvalidInputError):
    """Arrays handed to a plot do not fit together."""


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _curves(values: Curves, default_name: str) -> dict[str, np.ndarray]:
    if isinstance(values, Mapping):
        return {str(name): np.asarray(v, dtype=float) for name, v in values.items()}
    return {default_name: np.asarray(values, dtype=float)}


def _binary(y_true: ArrayLike, n: int, what: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise PlotInputError(f"y_true has shape {y.shape}; expected ({n},) like {what}")
    if not np.isin(y, (0, 1)).all():
        bad = pd.unique(y[~np.isin(y, (0, 1))])[:5].tolist()
        raise PlotInputError(f"y_true has values {bad}; expected binary labels 0/1")
    return y.astype(float)


def confusion_table(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str], *, normalize: bool = False
) -> pd.DataFrame:
    """Return the confusion matrix: rows are true labels, columns predicted, in ``labels``
    order. Counts, or row shares when ``normalize`` (a row without examples stays 0)."""
    names = list(labels)
    true_codes = pd.Categorical(np.asarray(y_true), categories=names).codes
    pred_codes = pd.Categorical(np.asarray(y_pred), categories=names).codes
    if len(true_codes) != len(pred_codes):
        raise PlotInputError(
            f"y_true has {len(true_codes)} values and y_pred {len(pred_codes)}; expected equal"
        )
    for what, raw, codes in (("y_true", y_true, true_codes), ("y_pred", y_pred, pred_codes)):
        if (codes < 0).any():
            unknown = pd.unique(np.asarray(raw)[codes < 0])[:5].tolist()
            raise PlotInputError(f"{what} has values {unknown} that are not in labels {names}")
    k = len(names)
    counts = np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)
    table = pd.DataFrame(counts, index=pd.Index(names, name="true"), columns=names)
    table.columns.name = "predicted"
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros((k, k)), where=totals > 0)
        return pd.DataFrame(shares, index=table.index, columns=table.columns)
    return table


def plot_confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: Sequence[str],
    *,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Figure:
    """Return a heat map of ``confusion_table``: row shares (``normalize``) or counts, each
    cell annotated."""
    table = confusion_table(y_true, y_pred, labels, normalize=normalize)
    k = len(table)
    size = max(4.0, 0.6 * k + 2.5)
    figure = _figure(size + 1.0, size)
    ax = figure.add_subplot()
    image = ax.imshow(table.to_numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=ax, label="share of true class" if normalize else "accounts")
    ax.set_xticks(range(k), labels=list(table.columns), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(table.index))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = table.to_numpy().max() if k else 0
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        dark = peak and value > 0.6 * peak
        ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    return figure


def calibration_table(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> pd.DataFrame:
    """Return one row per non-empty probability bin: ``bin_low``, ``bin_high``,
    ``mean_predicted``, ``observed_rate`` and ``count``.

    Assumes binary ``y_true`` and probabilities in [0, 1]. ``uniform`` bins split [0, 1] into
    equal widths (1.0 falls in the last bin); ``quantile`` bins hold about equal counts.
    """
    prob = np.asarray(y_prob, dtype=float)
    y = _binary(y_true, len(prob), "y_prob")
    if prob.size and (np.isnan(prob).any() or prob.min() < 0 or prob.max() > 1):
        raise PlotInputError("y_prob has values outside [0, 1] or NaN; expected probabilities")
    if n_bins < 1:
        raise PlotInputError(f"n_bins={n_bins}; expected at least 1")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1)))
    else:
        raise PlotInputError(f"strategy={strategy!r}; expected 'uniform' or 'quantile'")
    bins = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, len(edges) - 2)
    frame = pd.DataFrame({"bin": bins, "prob": prob, "y": y})
    grouped = frame.groupby("bin").agg(
        mean_predicted=("prob", "mean"), observed_rate=("y", "mean"), count=("y", "size")
    )
    index = grouped.index.to_numpy()
    grouped.insert(0, "bin_high", edges[index + 1])
    grouped.insert(0, "bin_low", edges[index])
    return grouped.reset_index(drop=True)


def plot_calibration_curve(
    y_true: ArrayLike,
    y_prob: Curves,
    *,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
    title: str = "Calibration (reliability diagram)",
) -> Figure:
    """Return a reliability diagram: observed rate against mean predicted probability per
    bin, one line per curve (pass a mapping name -> probabilities to compare the model with
    baselines), the diagonal of perfect calibration, and a histogram of predictions below."""
    curves = _curves(y_prob, "model")
    figure = _figure(6.0, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, prob in curves.items():
        table = calibration_table(y_true, prob, n_bins=n_bins, strategy=strategy)
        top.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
        bottom.hist(prob, bins=np.linspace(0, 1, 21), histtype="step", label=name)
    top.set_ylabel("observed rate")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("accounts")
    return figure


def plot_feature_importance(
    importance: Mapping[str, float] | pd.Series,
    *,
    top_n: int = 20,
    title: str = "Feature importance (gain)",
) -> Figure:
    """Return a horizontal bar chart of the ``top_n`` most important features, largest on top.

    ``importance`` maps feature name to importance, e.g. ``feature_importance(booster)``.
    """
    series = pd.Series(importance, dtype=float).sort_values(ascending=False).head(top_n)
    figure = _figure(7.0, max(3.0, 0.3 * len(series) + 1.5))
    ax = figure.add_subplot()
    ax.barh(range(len(series)), series.to_numpy()[::-1])
    ax.set_yticks(range(len(series)), labels=[str(n) for n in series.index[::-1]])
    ax.set_xlabel("total gain")
    ax.set_title(title)
    return figure


def feature_importance(model: Any, *, importance_type: str = "gain") -> pd.Series:
    """Return a LightGBM model's importance per feature, largest first.

    Accepts a ``lightgbm.Booster`` or a fitted scikit-learn style ``LGBMModel``.
    """
    booster = getattr(model, "booster_", model)
    try:
        names = booster.feature_name()
        values = booster.feature_importance(importance_type=importance_type)
    except AttributeError as exc:
        raise PlotInputError(
            f"model of type {type(model).__name__} has no feature importances; expected a "
            "lightgbm.Booster or a fitted LGBMModel"
        ) from exc
    return pd.Series(values, index=names, dtype=float).sort_values(ascending=False)


def gains_table(y_true: ArrayLike, score: ArrayLike) -> pd.DataFrame:
    """Return the cumulative gains curve: targeting accounts in descending ``score`` order,
    the share of accounts targeted (``targeted``) against the share of positives captured
    (``captured``), starting at (0, 0). Ties in score are taken together, so the curve does
    not depend on row order."""
    s = np.asarray(score, dtype=float)
    y = _binary(y_true, len(s), "score")
    frame = (
        pd.DataFrame({"score": s, "y": y})
        .groupby("score", sort=True)
        .agg(n=("y", "size"), positives=("y", "sum"))
        .iloc[::-1]
    )
    targeted = np.concatenate([[0.0], frame["n"].cumsum().to_numpy() / max(len(s), 1)])
    total = y.sum()
    positives = frame["positives"].cumsum().to_numpy()
    captured = np.concatenate([[0.0], positives / total if total else positives * 0.0])
    return pd.DataFrame({"targeted": targeted, "captured": captured})


def plot_cumulative_gains(
    y_true: ArrayLike,
    score: Curves,
    *,
    title: str = "Cumulative gains",
) -> Figure:
    """Return a cumulative gains chart: one curve per score (pass a mapping name -> scores to
    compare the model with baselines), with the random diagonal and the perfect curve."""
    curves = _curves(score, "model")
    y = np.asarray(y_true, dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    rate = y.mean() if y.size else 0.0
    if rate > 0:
        ax.plot([0, rate, 1], [0, 1, 1], linestyle=":", color="black", label="perfect")
    for name, s in curves.items():
        table = gains_table(y_true, s)
        ax.plot(table["targeted"], table["captured"], label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("share of accounts targeted (highest score first)")
    ax.set_ylabel("share of positives captured")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return figure
