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
