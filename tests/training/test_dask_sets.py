"""Training sets built on Dask workers per account range equal the pandas-built sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.simulate import simulate, write_simulation
from features.taxonomy import Taxonomy, load_taxonomy
from models.outcomes import load_outcomes
from training.dask_sets import write_sets_dask
from training.train import build_set, prepare

pytestmark = pytest.mark.dask

MODELS = ["phase", "churn", "next-content"]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _comparable(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows sorted by ``keys``; categories and Dask's strings as plain objects."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out.sort_values(keys, kind="stable", ignore_index=True)


def test_range_parts_equal_the_pandas_sets(scheduler: str, tmp_path: Path) -> None:
    taxonomy: Taxonomy = load_taxonomy()
    data_dir = write_simulation(simulate(400, seed=11, months=24), tmp_path / "data")
    prepared = prepare(data_dir, taxonomy)
    outcomes = load_outcomes()
    built = write_sets_dask(
        data_dir, taxonomy, tmp_path / "work", MODELS, outcomes, scheduler=scheduler, npartitions=5
    )
    assert built.partitions == 5
    assert built.worker_peak_mb and all(v > 0 for v in built.worker_peak_mb.values())
    for model in MODELS:
        expected = build_set(model, prepared, taxonomy, outcomes)
        parts = built.sets[model]
        keys = (
            ["as_of", "account_id", "exposure_id"]
            if model == "next-content"
            else ["as_of", "account_id"]
        )
        got = pd.concat([pd.read_parquet(p) for p in parts.paths], ignore_index=True)
        assert len(parts.paths) > 1
        assert parts.rows == len(expected.frame) > 100
        assert list(got.columns) == list(expected.frame.columns)
        pd.testing.assert_frame_equal(
            _comparable(got, keys), _comparable(expected.frame, keys), check_dtype=False
        )
        assert parts.split == expected.split.dates
        assert parts.feature_columns == expected.feature_columns
        assert parts.label_column == expected.label_column
        assert parts.class_names == expected.class_names
        assert parts.horizon_days == expected.horizon_days
    # phase labels read the whole population's figures: 5 ranges alone would differ
    assert np.unique(built.sets["phase"].class_names).size >= 2


def test_churn_trains_from_the_parts_on_the_workers(scheduler: str, tmp_path: Path) -> None:
    from dask.distributed import Client

    from models.fitting import category_levels, fitted_categories
    from training.dask_train import in_sample, train_outcome_parts
    from training.outcome import train_outcome

    taxonomy = load_taxonomy()
    data_dir = write_simulation(simulate(1500, seed=5, months=24), tmp_path / "data")
    outcomes = load_outcomes()
    churn = next(o for o in outcomes if o.name == "churn")
    parts = write_sets_dask(
        data_dir, taxonomy, tmp_path / "work", ["churn"], outcomes, scheduler=scheduler
    ).sets["churn"]
    expected = build_set("churn", prepare(data_dir, taxonomy), taxonomy, outcomes)
    every = {"max_features": 0}  # every feature, so the categorical ones are in
    local = train_outcome(expected, churn, params=every)
    with Client(scheduler) as client:
        whole = train_outcome_parts(parts, churn, client=client, params=every)
        sampled = train_outcome_parts(parts, churn, client=client, budget_bytes=1e6)
    # the category encoding is the pandas path's: the training rows' levels
    train_x = expected.split.train[expected.feature_columns]
    levels = category_levels(train_x)
    got = fitted_categories(whole.estimator)
    assert got == levels == fitted_categories(local.estimator)
    assert got
    assert whole.params["train_sample_share"] == 1.0
    assert whole.params["test_rows"] == len(expected.split.test)
    low, high = local.metrics["model.roc_auc_ci_low"], local.metrics["model.roc_auc_ci_high"]
    assert low - 0.03 <= whole.metrics["model.roc_auc"] <= high + 0.03
    assert whole.metrics["model.roc_auc"] > 0.65
    for baseline in ("rfm_logistic", "recency_logistic", "logistic"):
        assert whole.metrics[f"baseline_{baseline}.roc_auc"] == pytest.approx(
            local.metrics[f"baseline_{baseline}.roc_auc"], abs=1e-3
        )
    assert local.gate is not None
    assert whole.params["gate_baseline"] == local.gate.baseline
    # over the budget: a stated, seeded sample of whole accounts
    share = sampled.params["train_sample_share"]
    assert 0 < share < 1
    assert sampled.params["test_rows"] == len(expected.split.test)
    ids = pd.Series(expected.frame["account_id"].unique())
    kept = in_sample(ids, share)
    assert 0 < kept.sum() < len(ids)
    assert (in_sample(ids, share) == kept).all()


def test_phase_and_next_content_train_on_a_sample_of_the_parts(
    scheduler: str, tmp_path: Path
) -> None:
    from training.dask_train import in_sample, sampled_set, train_sampled_parts

    taxonomy = load_taxonomy()
    data_dir = write_simulation(simulate(600, seed=12, months=24), tmp_path / "data")
    prepared = prepare(data_dir, taxonomy)
    outcomes = load_outcomes()
    models = ["phase", "next-content"]
    built = write_sets_dask(
        data_dir, taxonomy, tmp_path / "work", models, outcomes, scheduler=scheduler
    )
    expected = {m: build_set(m, prepared, taxonomy, outcomes) for m in models}

    # Within the budget: the pandas set itself (its split's rows), and phase trains alike.
    whole, share = sampled_set(built.sets["phase"])
    assert share == 1.0
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(
            _comparable(getattr(whole.split, name), ["as_of", "account_id"]),
            _comparable(getattr(expected["phase"].split, name), ["as_of", "account_id"]),
            check_dtype=False,
        )
    from training.phase import train_phase

    local = train_phase(expected["phase"], taxonomy=taxonomy)
    phase = train_sampled_parts(built.sets["phase"], taxonomy)
    assert phase.params["set_sample_share"] == 1.0
    primary = "model.macro_f1_hindsight"
    assert phase.metrics[primary] == pytest.approx(local.metrics[primary], abs=0.02)

    # Over the budget: a seeded sample of whole accounts, stated in the params.
    parts = built.sets["next-content"]
    budget = 0.4 * parts.rows * 1000  # well under the set's bytes (hundreds a row)
    sample, share = sampled_set(parts, budget_bytes=budget)
    assert 0 < share < 1
    ids = pd.Series(expected["next-content"].frame["account_id"].astype(str).unique())
    kept = set(ids[in_sample(ids, share)])
    assert set(sample.frame["account_id"].astype(str)) == kept
    split = expected["next-content"].split
    every = pd.concat([split.train, split.valid, split.test])  # purged dates are not read
    assert len(sample.frame) == int(every["account_id"].astype(str).isin(kept).sum())
    result = train_sampled_parts(
        parts, taxonomy, content=prepared.data.content, budget_bytes=budget
    )
    assert result.params["set_sample_share"] == pytest.approx(share, abs=1e-6)
    assert result.params["set_sample_rows"] == len(sample.frame)
    assert result.metrics["model.roc_auc"] > 0.6
    assert result.gate is not None
