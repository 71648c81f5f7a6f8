"""The Dask engine equals the pandas engine (on a real 2-worker LocalCluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.pipeline import build_features
from features.pipeline.dask_engine import account_partition
from features.taxonomy import Taxonomy, load_taxonomy
from tests.utils.data import AS_OF, make_data, write_bare_dir

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def test_partition_is_stable_and_in_range() -> None:
    ids = pd.Series(["A001", "A002", "A003", "A001"], dtype="str")
    parts = account_partition(ids, 3)
    assert parts[0] == parts[3]
    assert set(parts) <= {0, 1, 2}
    assert list(account_partition(ids, 3)) == list(parts)


def test_dask_equals_pandas_on_hand_built_data(scheduler: str, taxonomy: Taxonomy) -> None:
    data = make_data(taxonomy)
    dates = [AS_OF - pd.Timedelta(days=60), AS_OF]
    expected = build_features(data, dates, taxonomy)
    got = build_features(data, dates, taxonomy, engine="dask", scheduler=scheduler, npartitions=3)
    pd.testing.assert_frame_equal(got, expected)


def test_dask_equals_pandas_on_simulated_journeys(scheduler: str, taxonomy: Taxonomy) -> None:
    from features.simulate import simulate

    data = simulate(300, seed=3, months=12, taxonomy=taxonomy).data
    end = data.touchpoints["ts"].max().normalize()
    dates = [end - pd.Timedelta(days=90), end - pd.Timedelta(days=30)]
    expected = build_features(data, dates, taxonomy)
    got = build_features(data, dates, taxonomy, engine="dask", scheduler=scheduler, npartitions=4)
    assert len(got) > 400
    pd.testing.assert_frame_equal(got, expected)


def test_dask_equals_pandas_on_bare_data(
    scheduler: str, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """Accounts with only their id and touchpoints without contact or content (no other
    table): firmographics missing, accounts existing from their first touchpoint."""
    from features.load import read_data_dir
    from features.simulate import simulate

    sim = simulate(200, seed=4, months=12, taxonomy=taxonomy).data
    data = read_data_dir(write_bare_dir(sim, tmp_path), taxonomy)
    end = data.touchpoints["ts"].max().normalize()
    dates = [end - pd.Timedelta(days=200), end - pd.Timedelta(days=30)]
    expected = build_features(data, dates, taxonomy)
    got = build_features(data, dates, taxonomy, engine="dask", scheduler=scheduler, npartitions=3)
    assert len(got) > 200 and got["industry"].isna().all()
    pd.testing.assert_frame_equal(got, expected)
