"""One fitting function for every model: locally, or on a real 2-worker Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.fitting import THREADED_FIT_ROWS, fit_classifier, fit_threads, model_frame

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "verbose": -1,
    "random_state": 1,
}


def data(seed: int, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    x["segment"] = pd.Categorical(rng.choice(["a", "b", "c"], size=n), categories=["a", "b", "c"])
    logit = x["f0"] - 0.5 * x["f1"] + (x["segment"] == "b") * 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y.to_numpy()


def test_local_fit_stops_early() -> None:
    x, y = data(0, 3000)
    xv, yv = data(1, 1000)
    model = fit_classifier(PARAMS, x, y, xv, yv, early_stopping_rounds=20)
    assert isinstance(model, lgb.LGBMClassifier)
    assert 0 < model.best_iteration_ < PARAMS["n_estimators"]


def test_small_fits_run_on_one_thread_and_large_ones_on_the_threads_asked_for() -> None:
    assert fit_threads({"n_jobs": 2}, THREADED_FIT_ROWS - 1) == 1
    assert fit_threads({"n_jobs": 2}, THREADED_FIT_ROWS) == 2
    assert fit_threads({}, 10) is None  # LightGBM's own default
    x, y = data(0, 3000)
    xv, yv = data(1, 1000)
    model = fit_classifier({**PARAMS, "n_jobs": 2}, x, y, xv, yv, early_stopping_rounds=20)
    assert model.get_params()["n_jobs"] == 1


def test_the_number_of_threads_does_not_change_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deterministic fits: the same trees on one thread or two (fit_threads may pick either
    for a model's default parameters)."""
    x, y = data(0, 3000)
    xv, yv = data(1, 1000)
    one = fit_classifier({**PARAMS, "n_jobs": 1}, x, y, xv, yv, early_stopping_rounds=20)
    monkeypatch.setattr("models.fitting.THREADED_FIT_ROWS", 0)  # this small fit on two
    two = fit_classifier({**PARAMS, "n_jobs": 2}, x, y, xv, yv, early_stopping_rounds=20)
    assert two.get_params()["n_jobs"] == 2
    np.testing.assert_array_equal(
        one.predict_proba(model_frame(one, xv)), two.predict_proba(model_frame(two, xv))
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.mark.dask
def test_dask_fit_matches_local_quality(client: Any) -> None:
    x, y = data(0, 6000)
    xv, yv = data(1, 2000)
    xt, yt = data(2, 4000)
    local = fit_classifier(PARAMS, x, y, xv, yv, early_stopping_rounds=20)
    distributed = fit_classifier(PARAMS, x, y, xv, yv, early_stopping_rounds=20, client=client)
    assert isinstance(distributed, lgb.LGBMClassifier)
    # fitted on codes of the categorical levels: predictions go through model_frame
    auc_local = roc_auc_score(yt, local.predict_proba(model_frame(local, xt))[:, 1])
    auc_dask = roc_auc_score(yt, distributed.predict_proba(model_frame(distributed, xt))[:, 1])
    assert auc_local > 0.7
    assert abs(auc_dask - auc_local) < 0.02


def test_categories_are_encoded_as_codes_of_the_training_levels() -> None:
    from models.fitting import category_levels, encode_categories

    train = pd.DataFrame(
        {"n": [1.0, 2.0, 3.0], "kind": pd.Categorical(["b", "a", "b"], categories=["a", "b"])}
    )
    levels = category_levels(train)
    assert levels == {"kind": ["a", "b"]}
    later = pd.DataFrame({"n": [4.0, 5.0, 6.0], "kind": ["b", "c", None]})  # text, as JSON gives
    coded = encode_categories(later, levels)
    np.testing.assert_array_equal(coded["kind"].to_numpy(), [1.0, np.nan, np.nan])
    assert coded["n"].tolist() == [4.0, 5.0, 6.0]
    # codes already (a logged input example) are taken as they are
    assert encode_categories(coded, levels)["kind"].equals(coded["kind"])


def test_categorical_input_is_encoded_as_its_text_would_be() -> None:
    from models.fitting import encode_categories

    levels = {"kind": ["a", "b", "c"]}
    values = ["c", None, "zz", "a", "c", "b"]
    # Categories in another order than the levels, one unknown ("zz") and one unused ("q").
    categorical = pd.Categorical(values, categories=["zz", "c", "q", "b", "a"])
    by_category = encode_categories(pd.DataFrame({"kind": categorical}), levels)
    by_text = encode_categories(pd.DataFrame({"kind": values}), levels)
    np.testing.assert_array_equal(by_category["kind"].to_numpy(), [2.0, np.nan, np.nan, 0, 2, 1])
    np.testing.assert_array_equal(by_category["kind"].to_numpy(), by_text["kind"].to_numpy())


def test_float64_inputs_score_as_the_float32_ones_the_model_was_fitted_on() -> None:
    # Values that float32 rounds: fitted on float32, a float64 value at serving must fall
    # on the same side of every split as its rounded self.
    rng = np.random.default_rng(3)
    x = pd.DataFrame(
        {
            "fine": rng.normal(size=4000) * 1e-3 + 1000.0,
            "count": rng.integers(0, 50, size=4000).astype(np.int32),
        }
    )
    y = ((x["fine"] - 1000.0) * 1e3 + 0.1 * x["count"] + rng.normal(size=4000) > 2).to_numpy()
    model = fit_classifier(PARAMS, x[:3000], y[:3000], x[3000:], y[3000:], early_stopping_rounds=20)
    assert model_frame(model, x).dtypes.eq(np.float32).all()
    served = model.booster_.predict(x.to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(model.predict_proba(model_frame(model, x))[:, 1], served)
