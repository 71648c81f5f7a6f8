"""Fitting a LightGBM classifier with early stopping, on this machine or on a Dask cluster.

Every model fits through :func:`fit_classifier`, so ``--engine dask`` changes where the
trees are grown and nothing else. ``lightgbm.dask`` has no early stopping, so on Dask the
best number of rounds is read from the validation curve of a first fit and a second fit
grows exactly that many; the result is a plain ``LGBMClassifier`` either way.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd


def fit_classifier(
    params: dict[str, Any],
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    *,
    early_stopping_rounds: int,
    client: Any | None = None,
) -> lgb.LGBMClassifier:
    """An ``LGBMClassifier`` fitted on the training rows, stopped early on the validation
    rows' first metric. ``client`` (a ``dask.distributed.Client``) trains on its cluster."""
    if client is None:
        estimator = lgb.LGBMClassifier(**params)
        estimator.fit(
            x_train,
            y_train,
            eval_X=(x_valid,),
            eval_y=(y_valid,),
            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        )
        return estimator
    return _fit_on_dask(params, x_train, y_train, x_valid, y_valid, client)


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
    quick = lgb.LGBMClassifier(**{**params, "n_estimators": rounds})
    quick.fit(x.iloc[sample], y[sample])
    gain = quick.booster_.feature_importance(importance_type="gain")
    top = set(np.argsort(-gain, kind="stable")[:max_features].tolist())
    return [c for i, c in enumerate(x.columns) if i in top]


def model_columns(estimator: Any) -> list[str]:
    """The feature columns a fitted model takes, in order: ``feature_name_`` of an
    ``LGBMClassifier`` or ``feature_name()`` of a raw ``lightgbm.Booster`` (either may come
    back from MLflow)."""
    names = getattr(estimator, "feature_name_", None)
    return list(names if names is not None else estimator.feature_name())


def _fit_on_dask(
    params: dict[str, Any],
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    client: Any,
) -> lgb.LGBMClassifier:
    import dask.dataframe as dd
    from lightgbm.dask import DaskLGBMClassifier

    workers = max(1, len(client.scheduler_info()["workers"]))

    def parts(x: pd.DataFrame, y: np.ndarray) -> tuple[Any, Any]:
        n = max(1, min(workers, len(x) // 1000 or 1))
        frame = x.reset_index(drop=True)
        return (
            dd.from_pandas(frame, npartitions=n),
            dd.from_pandas(pd.Series(y, name="label"), npartitions=n),
        )

    # n_jobs is per worker; the cluster decides the parallelism
    dask_params = {k: v for k, v in params.items() if k != "n_jobs"}
    xt, yt = parts(x_train, y_train)
    probe = DaskLGBMClassifier(client=client, **dask_params)
    probe.fit(xt, yt)
    # The validation curve is computed here rather than read from evals_result_, which is
    # empty whenever the worker that returns the model held no validation partition.
    best_rounds = _best_rounds(probe.to_local().booster_, x_valid, y_valid)
    final = DaskLGBMClassifier(client=client, **{**dask_params, "n_estimators": best_rounds})
    final.fit(xt, yt)
    return final.to_local()


def _best_rounds(booster: lgb.Booster, x_valid: pd.DataFrame, y_valid: np.ndarray) -> int:
    """The number of rounds with the lowest validation log loss (binary or multiclass)."""
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
        losses.append(-np.mean(np.log(np.clip(likelihood, 1e-15, 1.0))))
    return int(np.argmin(losses)) + 1 if losses else 1
