"""Fitting a LightGBM classifier with early stopping, on this machine or on a Dask cluster.

Every model fits through :func:`fit_classifier`, so ``--engine dask`` changes where the
trees are grown and nothing else. ``lightgbm.dask`` has no early stopping, so on Dask the
best number of rounds is read from the validation curve of a first fit and a second fit
grows exactly that many; the result is a plain ``LGBMClassifier`` either way.

Categorical columns (pandas ``category`` dtype in the training frames) reach LightGBM as
numbers: each value's code among the levels the training rows hold (a float; NaN for a
missing or unseen value), declared categorical by name. A model so fitted takes only
numbers, so its logged input example and signature survive MLflow's JSON round trip and
``mlflow.pyfunc.load_model(uri).predict(example)`` works outside this project (a model fitted
on pandas categories needs ``category`` dtypes at predict time, which JSON cannot carry).
The levels are kept on the estimator (:data:`CATEGORIES_ATTRIBUTE`, pickled with it) and
logged in the model's MLmodel metadata; :func:`model_frame` encodes a frame for a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

# The fitted estimator's attribute holding column -> levels (code order) of the categorical
# columns it takes as codes (see the module docstring).
CATEGORIES_ATTRIBUTE = "nba_categories_"
# The same data and parameters should make the same model whatever the machine's load:
# left to choose, LightGBM times column-wise against row-wise histograms before each fit
# and takes the faster, whose sums can differ in the last bits (a closed-loop run under
# load retrained other models than a quiet run of the same served log). Column-wise costs
# no more on these sets (300,000 x 380 float32, 60 trees, 2 threads: 17.7 s, row-wise
# 17.5 s, auto-chosen 18.2 s with its timing test).
REPRODUCIBLE_PARAMS: dict[str, Any] = {"force_col_wise": True, "deterministic": True}


# Fits of fewer training rows that ask for threads (``n_jobs``) run on one: on a busy 2-core
# machine two OpenMP threads ran small fits 5x slower than one (an iteration's work is too
# small to cover the threads' waits for each other). Larger fits take the threads asked
# for: at 100,000 accounts two threads fit the phase model in 60 s instead of 82 s and the
# churn model in 56 s instead of 62 s, the same trees (deterministic: the result does not
# depend on the number of threads).
THREADED_FIT_ROWS = 50_000


def fit_threads(params: Mapping[str, Any], rows: int) -> int | None:
    """The ``n_jobs`` a fit of ``rows`` training rows runs with: ``params``' own (None: not
    set), at most 1 below :data:`THREADED_FIT_ROWS`."""
    asked = params.get("n_jobs")
    if asked is None or rows >= THREADED_FIT_ROWS:
        return None if asked is None else int(asked)
    return 1


def _classifier(params: Mapping[str, Any], rows: int) -> lgb.LGBMClassifier:
    """An ``LGBMClassifier`` of ``params`` on top of :data:`REPRODUCIBLE_PARAMS`, with
    :func:`fit_threads` for ``rows`` training rows."""
    merged = {**REPRODUCIBLE_PARAMS, **params}
    threads = fit_threads(merged, rows)
    if threads is not None:
        merged["n_jobs"] = threads
    return lgb.LGBMClassifier(**merged)


def fit_classifier(
    params: dict[str, Any],
    x_train: Any,
    y_train: Any,
    x_valid: Any,
    y_valid: Any,
    *,
    early_stopping_rounds: int | None,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """An ``LGBMClassifier`` fitted on the training rows, stopped early on the validation
    rows' first metric (``early_stopping_rounds`` None: all ``n_estimators`` trees, no
    validation rows; pandas only). ``client`` (a ``dask.distributed.Client``) trains on its
    cluster.
    Categorical columns are fitted as codes of the training rows' levels, which the
    estimator keeps (:func:`fitted_categories`; predict through :func:`model_frame`).

    Rows are pandas frames and NumPy labels, or, with ``client``, Dask frames and series
    whose partitions stay on the workers (read there from a set's Parquet parts; categorical
    columns with known categories, the same dtypes as the pandas frames')."""
    levels = category_levels(getattr(x_train, "_meta", x_train))
    stops = early_stopping_rounds is not None
    if not stops and (client is not None or _is_dask(x_train)):
        raise ValueError("a fit without early stopping takes pandas rows, not Dask")
    if _is_dask(x_train):
        x_train = x_train.map_partitions(encode_categories, levels)
        x_valid = x_valid.map_partitions(encode_categories, levels)
    else:
        x_train = float32_frame(encode_categories(x_train, levels))
        if stops:
            x_valid = float32_frame(encode_categories(x_valid, levels))
    declared: list[str] | Literal["auto"] = list(levels) or "auto"
    if client is None and _is_dask(x_train):
        raise ValueError("Dask frames need a client to fit on")
    if client is None:
        estimator = _classifier(params, len(x_train))
        validation: dict[str, Any] = {}
        if early_stopping_rounds is not None:
            validation = {
                "eval_X": (x_valid,),
                "eval_y": (y_valid,),
                "callbacks": [lgb.early_stopping(early_stopping_rounds, verbose=False)],
            }
        estimator.fit(x_train, y_train, categorical_feature=declared, **validation)
    else:
        estimator = _fit_on_dask(params, x_train, y_train, x_valid, y_valid, client, declared)
    setattr(estimator, CATEGORIES_ATTRIBUTE, levels)
    return estimator


def category_levels(x: pd.DataFrame) -> dict[str, list[str]]:
    """Column -> its levels as text, in code order, for each ``category`` column of ``x``."""
    return {
        str(c): [str(v) for v in x[c].cat.categories]
        for c in x.columns
        if isinstance(x[c].dtype, pd.CategoricalDtype)
    }


def encode_categories(x: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """``x`` with each column of ``levels`` replaced by the code of its value among them, as
    float64 (NaN for a missing or unknown value); a column already numeric is taken as codes.
    Other columns are left as they are."""
    if not levels:
        return x
    out = x.copy(deep=False)
    for column, names in levels.items():
        if column not in out.columns or pd.api.types.is_numeric_dtype(out[column].dtype):
            continue
        out[column] = _codes_among(out[column], names)
    return out


def _codes_among(values: pd.Series, names: Sequence[str]) -> np.ndarray:
    """The code of each value among ``names`` as float64 (NaN: missing or unknown)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Map the few categories, not the rows: scoring every eligible item passes
        # millions of categorical rows, and turning each into text took most of the time.
        of_category = pd.Index(list(names)).get_indexer(
            pd.Index(values.cat.categories.astype("string"))
        )
        lookup = np.append(of_category, -1).astype(np.float64)
        codes = lookup[values.cat.codes.to_numpy()]  # code -1 (missing) reads the last entry
    else:
        text = values.astype("string")
        codes = pd.Categorical(text, categories=list(names)).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes


def fitted_categories(estimator: Any) -> dict[str, list[str]]:
    """Column -> levels (code order) of the categorical columns ``estimator`` takes as
    codes; empty for a model without categorical columns."""
    return dict(getattr(estimator, CATEGORIES_ATTRIBUTE, None) or {})


def model_frame(estimator: Any, x: pd.DataFrame) -> pd.DataFrame:
    """``x``'s columns the estimator takes, in its order, categorical ones as their codes,
    as one float32 block (:func:`float32_frame`): what its ``predict_proba`` is given."""
    return float32_frame(
        encode_categories(x[model_columns(estimator)], fitted_categories(estimator))
    )


def float32_frame(x: pd.DataFrame) -> pd.DataFrame:
    """``x`` (numeric columns; categorical ones encoded) as a frame over one C-ordered
    float32 array, NaN for a missing value.

    LightGBM turns a frame of mixed dtypes into a float64 array (an int32 count column
    forces it), a copy twice the size of this one; this frame it reads without a copy.
    Models fit and predict on the same float32 values, and a float64 value at serving
    falls on the same side of every split: each threshold lies halfway between two
    training values, which float32 rounding never crosses."""
    values = x.to_numpy(dtype=np.float32, na_value=np.nan)
    return pd.DataFrame(values, index=x.index, columns=x.columns, copy=False)


def float32_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its float64 columns as float32, turned one at a time (no second copy
    of the frame; ``frame`` itself is left as it was): half the memory of a training set's
    floats, and the values :func:`float32_frame` fits on anyway."""
    out = frame.copy(deep=False)
    for column in frame.columns[(frame.dtypes == np.float64).to_numpy()]:
        out[column] = frame[column].astype(np.float32)
    return out


def select_features(
    x: pd.DataFrame,
    y: np.ndarray,
    params: dict[str, Any],
    max_features: int,
    rng: np.random.Generator,
    *,
    rows: int,
    rounds: int,
) -> list[str]:
    """The ``max_features`` columns of ``x`` a quick LightGBM model (``rounds`` rounds on up
    to ``rows`` sampled rows, ``params`` otherwise) ranks highest by total gain, in ``x``'s
    column order; every column when ``max_features`` is 0 or covers them all."""
    if not max_features or max_features >= x.shape[1]:
        return list(x.columns)
    sample = np.sort(rng.choice(len(x), size=min(rows, len(x)), replace=False))
    # The same float32 values and category codes the model is then fitted on: columns a
    # float64 frame ranks differently by a hair would otherwise swap places at the cut.
    levels = category_levels(x)
    quick = _classifier({**params, "n_estimators": rounds}, len(sample))
    quick.fit(
        float32_frame(encode_categories(x.iloc[sample], levels)),
        y[sample],
        categorical_feature=list(levels) or "auto",
    )
    gain = quick.booster_.feature_importance(importance_type="gain")
    top = set(np.argsort(-gain, kind="stable")[:max_features].tolist())
    return [c for i, c in enumerate(x.columns) if i in top]


def model_columns(estimator: Any) -> list[str]:
    """The feature columns a fitted model takes, in order: ``feature_name_`` of an
    ``LGBMClassifier`` or ``feature_name()`` of a raw ``lightgbm.Booster`` (either may come
    back from MLflow)."""
    names = getattr(estimator, "feature_name_", None)
    return list(names if names is not None else estimator.feature_name())


def _is_dask(x: Any) -> bool:
    return hasattr(x, "map_partitions")


def _fit_on_dask(
    params: dict[str, Any],
    x_train: Any,
    y_train: Any,
    x_valid: Any,
    y_valid: Any,
    client: Any,
    categorical_feature: list[str] | Literal["auto"],
) -> lgb.LGBMClassifier:
    import dask.dataframe as dd
    from lightgbm.dask import DaskLGBMClassifier

    workers = max(1, len(client.scheduler_info()["workers"]))

    def parts(x: Any, y: Any) -> tuple[Any, Any]:
        if _is_dask(x):
            return x, y
        n = max(1, min(workers, len(x) // 1000 or 1))
        frame = x.reset_index(drop=True)
        return (
            dd.from_pandas(frame, npartitions=n),
            dd.from_pandas(pd.Series(y, name="label"), npartitions=n),
        )

    # n_jobs is per worker; the cluster decides the parallelism
    dask_params = {k: v for k, v in {**REPRODUCIBLE_PARAMS, **params}.items() if k != "n_jobs"}
    xt, yt = parts(x_train, y_train)
    probe = DaskLGBMClassifier(client=client, **dask_params)
    probe.fit(xt, yt, categorical_feature=categorical_feature)
    # The validation curve is computed here rather than read from evals_result_, which is
    # empty whenever the worker that returns the model held no validation partition.
    best_rounds = _best_rounds(probe.to_local().booster_, x_valid, y_valid)
    final = DaskLGBMClassifier(client=client, **{**dask_params, "n_estimators": best_rounds})
    final.fit(xt, yt, categorical_feature=categorical_feature)
    return final.to_local()


def _best_rounds(booster: lgb.Booster, x_valid: Any, y_valid: Any) -> int:
    """The number of rounds with the lowest validation log loss (binary or multiclass); of
    Dask rows, summed over their partitions on the workers."""
    if _is_dask(x_valid):
        import dask

        sums = dask.compute(
            *[
                dask.delayed(_log_losses)(booster, x, y)
                for x, y in zip(x_valid.to_delayed(), y_valid.to_delayed(), strict=True)
            ]
        )
        total, rows = np.sum([s for s, _ in sums], axis=0), sum(n for _, n in sums)
    else:
        total, rows = _log_losses(booster, x_valid, y_valid)
    return int(np.argmin(total / max(rows, 1))) + 1 if len(total) else 1


def _log_losses(booster: lgb.Booster, x_valid: Any, y_valid: Any) -> tuple[np.ndarray, int]:
    """The summed log loss of the rows after each round, and the number of rows."""
    y = np.asarray(y_valid).astype(np.int64)
    raw: np.ndarray | None = None
    losses = []
    for i in range(booster.current_iteration()):
        step = np.asarray(
            booster.predict(x_valid, start_iteration=i, num_iteration=1, raw_score=True)
        ).reshape(len(x_valid), -1)
        raw = step if raw is None else raw + step
        if raw.shape[1] == 1:
            p = 1 / (1 + np.exp(-raw[:, 0]))
            likelihood = np.where(y == 1, p, 1 - p)
        else:
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            likelihood = (shifted / shifted.sum(axis=1, keepdims=True))[np.arange(len(y)), y]
        losses.append(-np.sum(np.log(np.clip(likelihood, 1e-15, 1.0))))
    return np.asarray(losses), len(y)
