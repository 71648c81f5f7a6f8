"""Evaluation metrics the quality report uses beyond scikit-learn's.

Pure functions on arrays: calibration error, lift, bootstrap intervals, and the off-policy
estimators that value a new next-content policy from exposures logged under another policy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from features.errors import InvalidInputError

# Threads evaluating bootstrap resamples side by side. A resample's statistics are NumPy
# sorts, takes and reductions that release the GIL, so two threads take about half the
# wall time of one on 2 cores (the churn model's intervals at 100,000 accounts: 7 s); the
# draws stay in the generator's order, so the intervals equal a serial loop's.
BOOTSTRAP_THREADS = min(4, os.cpu_count() or 1)
# Resamples drawn ahead per thread: each holds one array of row positions.
_DRAWS_PER_THREAD = 4


class MetricError(InvalidInputError):
    """Inputs a metric cannot be computed from; the message names the argument."""


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    n = len(arrays[0])
    for i, a in enumerate(arrays):
        if a.ndim != 1 or len(a) != n:
            raise MetricError(
                f"argument {i + 1} has shape {a.shape}; expected one value per row ({n})"
            )
        if np.isnan(a).any():
            raise MetricError(f"argument {i + 1} holds {int(np.isnan(a).sum())} NaN values")
    if n == 0:
        raise MetricError("no rows to evaluate")
    return arrays


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, *, bins: int = 10) -> float:
    """Mean |observed rate - mean predicted probability| over equal-count bins, weighted by
    bin size (equal-count bins keep sparse high-risk bins from dominating)."""
    y, prob = _arrays(y_true, p)
    return _calibration_error(y, prob, np.argsort(prob, kind="stable"), bins)


def _calibration_error(y: np.ndarray, prob: np.ndarray, order: np.ndarray, bins: int) -> float:
    """:func:`expected_calibration_error` of float arrays ``y``, ``prob`` given ``order``,
    the stable ascending order of ``prob``."""
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        error += len(chunk) * abs(y[chunk].mean() - prob[chunk].mean())
    return float(error / len(y))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of 0/1 labels by the rank-sum (ties share their average rank), equal to
    scikit-learn's ``roc_auc_score`` and fast enough to bootstrap; NaN with one class."""
    return _rank_auc(np.asarray(y_true) == 1, rankdata(score))


def _rank_auc(positive: np.ndarray, ranks: np.ndarray) -> float:
    """ROC-AUC from each row's label (True: positive) and rank among the scores."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(sorted_score: np.ndarray) -> np.ndarray:
    """The ranks ``scipy.stats.rankdata`` gives ascending ``sorted_score`` (1-based, ties
    sharing their average rank), in the same order; whole or half numbers, so exact."""
    n = len(sorted_score)
    starts = np.flatnonzero(np.append(True, sorted_score[1:] != sorted_score[:-1]))
    ends = np.append(starts[1:], n)
    return np.repeat(0.5 * (starts + ends + 1), ends - starts)


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision (the PR-AUC scikit-learn's ``average_precision_score`` gives: the
    precision at each distinct score threshold weighted by the recall it adds); NaN
    without positives."""
    s = np.asarray(score, dtype=np.float64)
    return _average_precision(
        np.asarray(y_true, dtype=np.float64), s, np.argsort(-s, kind="stable")
    )


def _average_precision(y: np.ndarray, score: np.ndarray, order: np.ndarray) -> float:
    """:func:`average_precision` of float arrays given ``order``, the stable descending
    order of ``score``."""
    s, hits = score[order], y[order]
    tp = np.cumsum(hits)
    if tp[-1] == 0:
        return float("nan")
    last = np.append(s[1:] != s[:-1], True)  # the last row of each distinct score
    tp = tp[last]
    precision = tp / (np.nonzero(last)[0] + 1)
    recall_added = np.diff(np.append(0.0, tp / tp[-1]))
    return float((recall_added * precision).sum())


def lift_at(y_true: ArrayLike, score: ArrayLike, *, share: float = 0.1) -> float:
    """Positive rate among the top ``share`` by score divided by the overall positive rate."""
    if not 0 < share <= 1:
        raise MetricError(f"share={share}: expected a fraction in (0, 1]")
    y, s = _arrays(y_true, score)
    return _lift(y, np.argsort(-s, kind="stable"), share)


def _lift(y: np.ndarray, order: np.ndarray, share: float) -> float:
    """:func:`lift_at` of float labels ``y`` given ``order``, the stable descending order
    of the scores."""
    base = y.mean()
    if base == 0:
        return float("nan")
    top = order[: max(1, int(round(share * len(order))))]
    return float(y[top].mean() / base)


def binary_scores(y_true: ArrayLike, score: ArrayLike) -> dict[str, float]:
    """``roc_auc``, ``pr_auc`` (average precision), ``brier``, ``ece`` (10 equal-count
    bins) and ``lift_top_decile`` of 0/1 labels by ``score``, each equal to what
    :func:`roc_auc`, :func:`average_precision`, :func:`expected_calibration_error` and
    :func:`lift_at` give, from two sorts they share: a bootstrap computes all five on
    every resample of every scorer, and the sorts were most of its time."""
    y, p = _arrays(y_true, score)
    ascending = np.argsort(p, kind="stable")
    descending = np.argsort(-p, kind="stable")
    ranks = np.empty(len(p))
    ranks[ascending] = _average_ranks(p[ascending])
    return {
        "roc_auc": _rank_auc(y == 1, ranks),
        "pr_auc": _average_precision(y, p, descending),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": _calibration_error(y, p, ascending, 10),
        "lift_top_decile": _lift(y, descending, 0.1),
    }


def class_f1(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Accuracy, the F1 of each class code ``0 .. n_classes - 1`` (0 where a class is
    neither true nor predicted) and which classes occur in ``y_true``, from one confusion
    count (fast enough to bootstrap)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if len(t) == 0:
        raise MetricError("no rows to evaluate")
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    matrix = counts.reshape(n_classes, n_classes)
    hits = np.diag(matrix).astype(np.float64)
    true_n, pred_n = matrix.sum(axis=1), matrix.sum(axis=0)
    denominator = true_n + pred_n
    f1 = np.where(denominator > 0, 2 * hits / np.maximum(denominator, 1), 0.0)
    return float(hits.sum() / len(t)), f1, true_n > 0


def ips_value(
    reward: ArrayLike, logging_propensity: ArrayLike, target_propensity: ArrayLike
) -> float:
    """Inverse propensity score estimate of a target policy's mean reward per decision.

    ``target_propensity`` is the probability the target policy gives the logged action (1 or
    0 for a deterministic policy); ``logging_propensity`` the logged one (must be > 0).
    """
    r, mu, pi = _arrays(reward, logging_propensity, target_propensity)
    _check_propensities(mu)
    return float(np.mean(pi / mu * r))


def snips_value(
    reward: ArrayLike, logging_propensity: ArrayLike, target_propensity: ArrayLike
) -> float:
    """Self-normalised IPS: IPS divided by the mean importance weight (lower variance)."""
    r, mu, pi = _arrays(reward, logging_propensity, target_propensity)
    _check_propensities(mu)
    w = pi / mu
    if w.sum() == 0:
        return float("nan")
    return float(np.sum(w * r) / np.sum(w))


def doubly_robust_value(
    reward: ArrayLike,
    logging_propensity: ArrayLike,
    target_propensity: ArrayLike,
    predicted_reward_logged: ArrayLike,
    predicted_reward_target: ArrayLike,
) -> float:
    """Doubly robust estimate: the reward model's value of the target policy's choice,
    corrected by importance-weighted residuals on the logged actions.

    ``predicted_reward_logged`` is the model's reward for the logged action;
    ``predicted_reward_target`` the model's expected reward under the target policy in the
    same decision (for a deterministic policy: the prediction for the action it picks).
    """
    r, mu, pi, q_logged, q_target = _arrays(
        reward,
        logging_propensity,
        target_propensity,
        predicted_reward_logged,
        predicted_reward_target,
    )
    _check_propensities(mu)
    return float(np.mean(q_target + pi / mu * (r - q_logged)))


def _check_propensities(mu: np.ndarray) -> None:
    bad = (mu <= 0) | (mu > 1)
    if bad.any():
        raise MetricError(
            f"{int(bad.sum())} logging propensities outside (0, 1], e.g. {mu[bad][:3].tolist()}"
        )


def bootstrap_rows(
    n: int,
    statistics: Callable[[np.ndarray], dict[str, float] | None],
    *,
    rng: np.random.Generator,
    n_resamples: int = 200,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of named statistics of ``n`` rows: ``statistics``
    gets the resampled row positions and returns one value per name (None skips the
    resample); an interval is NaN when no resample gave its name a value. ``statistics``
    runs on :data:`BOOTSTRAP_THREADS` threads at once, so it must only read shared state.

    With ``groups`` (one key per row, e.g. the account of each row), whole groups are
    resampled with all their rows (a cluster bootstrap): rows of one account at several
    as-of dates are not independent, and resampling them one by one narrows the interval."""
    if n == 0:
        raise MetricError("no rows to resample")
    draw = _cluster_draw(groups, n) if groups is not None else lambda r: r.integers(0, n, n)
    samples: dict[str, list[float]] = {}
    threads = max(1, min(BOOTSTRAP_THREADS, n_resamples))
    batch = threads * _DRAWS_PER_THREAD
    with ThreadPoolExecutor(threads) as pool:
        for lo in range(0, n_resamples, batch):
            draws = [draw(rng) for _ in range(min(batch, n_resamples - lo))]
            for point in pool.map(statistics, draws):
                for k, v in (point or {}).items():
                    samples.setdefault(k, []).append(v)
    tail = (1 - level) / 2 * 100
    out: dict[str, tuple[float, float]] = {}
    for k, values in samples.items():
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if len(finite):
            bounds = np.percentile(finite, [tail, 100 - tail])
            out[k] = (float(bounds[0]), float(bounds[1]))
        else:
            out[k] = (float("nan"), float("nan"))
    return out


def _cluster_draw(groups: ArrayLike, n: int) -> Callable[[np.random.Generator], np.ndarray]:
    """A function drawing one cluster resample: as many groups as there are, with
    replacement, each with all its row positions."""
    keys = np.asarray(groups)
    if keys.ndim != 1 or len(keys) != n:
        raise MetricError(f"groups has shape {keys.shape}; expected one key per row ({n})")
    _, codes = np.unique(keys, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def draw(rng: np.random.Generator) -> np.ndarray:
        picked = rng.integers(0, len(counts), len(counts))
        sizes = counts[picked]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return order[np.repeat(starts[picked], sizes) + offsets]

    return draw


def bootstrap_interval(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    rng: np.random.Generator,
    n_resamples: int = 200,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of ``metric(y, score)`` for each scorer of ``scores``
    (same rows), and of each scorer's difference to the first one (``"<a>-<first>"``),
    from the same resampled rows (whole ``groups`` when given, as in
    :func:`bootstrap_rows`). Resamples with one class only are skipped (AUCs are undefined
    there); an interval is NaN when none is left."""
    y = np.asarray(y_true)
    named = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    first = next(iter(named))

    def statistics(rows: np.ndarray) -> dict[str, float] | None:
        if np.unique(y[rows]).size < 2:
            return None
        point = {k: metric(y[rows], p[rows]) for k, p in named.items()}
        diffs = {f"{k}-{first}": point[k] - point[first] for k in named if k != first}
        return {**point, **diffs}

    found = bootstrap_rows(
        len(y), statistics, rng=rng, n_resamples=n_resamples, level=level, groups=groups
    )
    names = [*named, *(f"{k}-{first}" for k in named if k != first)]
    return {k: found.get(k, (float("nan"), float("nan"))) for k in names}


def paired_bootstrap(
    y_true: ArrayLike,
    challenger: ArrayLike,
    champion: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    groups: ArrayLike | None,
    seed: int = 11,
    n_resamples: int = 200,
) -> tuple[float, float, float]:
    """``metric`` of ``challenger``'s scores minus ``champion``'s on the same rows, with the
    95 % percentile bootstrap interval of that difference over the same resampled rows
    (whole ``groups``, e.g. accounts): (difference, low, high)."""
    y = np.asarray(y_true)
    a = np.asarray(challenger, dtype=np.float64)
    b = np.asarray(champion, dtype=np.float64)
    ci = bootstrap_interval(
        y,
        {"champion": b, "challenger": a},
        metric,
        rng=np.random.default_rng(seed),
        n_resamples=n_resamples,
        groups=groups,
    )
    low, high = ci["challenger-champion"]
    return float(metric(y, a) - metric(y, b)), low, high


def bootstrap_auc(
    y_true: ArrayLike,
    score: ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = 200,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """The percentile bootstrap interval of ROC-AUC that :func:`bootstrap_interval` gives
    with :func:`roc_auc` (same resamples from the same ``rng``), in linear time per
    resample: the scores are ranked once, and a resample only counts how often it drew each
    row. Half a million test exposures take seconds instead of a sort per resample."""
    y = np.asarray(y_true) == 1
    s = np.asarray(score, dtype=np.float64)
    n = len(y)
    if n == 0:
        raise MetricError("no rows to resample")
    _, tie = np.unique(s, return_inverse=True)  # tied scores share a group, ascending
    tie = tie.reshape(-1)
    k = int(tie.max()) + 1
    draw = _cluster_draw(groups, n) if groups is not None else lambda r: r.integers(0, n, n)
    values = []
    for _ in range(n_resamples):
        drawn = np.bincount(draw(rng), minlength=n).astype(np.float64)
        pos = np.bincount(tie, weights=drawn * y, minlength=k)
        neg = np.bincount(tie, weights=drawn * ~y, minlength=k)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            continue  # one class: AUC undefined, as bootstrap_interval skips it
        # Each positive beats the negatives below its score and ties with half of its own.
        below = np.cumsum(neg) - neg
        values.append(float(pos @ (below + 0.5 * neg)) / (n_pos * n_neg))
    if not values:
        return (float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def with_intervals(
    intervals: dict[str, tuple[float, float]], *, prefix: str = ""
) -> dict[str, float]:
    """Intervals as metrics: ``<prefix><name>_ci_low`` and ``<prefix><name>_ci_high``."""
    out: dict[str, float] = {}
    for name, (low, high) in intervals.items():
        out[f"{prefix}{name}_ci_low"], out[f"{prefix}{name}_ci_high"] = low, high
    return out
