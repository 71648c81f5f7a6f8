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

_HIGHER_IS_BETTER = {"auc", "average_precision", "ndcg", "map", "auc_mu"}


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
    xv, yv = parts(x_valid, y_valid)
    probe = DaskLGBMClassifier(client=client, **dask_params)
    probe.fit(xt, yt, eval_X=(xv,), eval_y=(yv,))
    metric, curve = next(iter(next(iter(probe.evals_result_.values())).items()))
    best = np.argmax(curve) if metric in _HIGHER_IS_BETTER else np.argmin(curve)
    best_rounds = int(best) + 1
    final = DaskLGBMClassifier(client=client, **{**dask_params, "n_estimators": best_rounds})
    final.fit(xt, yt)
    return final.to_local()
