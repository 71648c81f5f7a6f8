"""The Dask engine equals the pandas engine (on a real 2-worker LocalCluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.pipeline import build_features
from features.pipeline.attributes import fit_attributes
from features.pipeline.dask_engine import account_partition
from features.taxonomy import Taxonomy, load_taxonomy
from tests.utils.data import AS_OF, ATTRIBUTES, make_data, with_attributes, write_bare_dir

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


def test_dask_equals_pandas_with_custom_attributes(scheduler: str, taxonomy: Taxonomy) -> None:
    from features.simulate import simulate

    data = with_attributes(simulate(200, seed=4, months=10, taxonomy=taxonomy).data)
    fitted = fit_attributes(data, ATTRIBUTES)
    end = data.touchpoints["ts"].max().normalize()
    dates = [end - pd.Timedelta(days=60), end]
    expected = build_features(data, dates, taxonomy, attributes=fitted)
    got = build_features(
        data, dates, taxonomy, engine="dask", scheduler=scheduler, npartitions=3, attributes=fitted
    )
    assert expected["n_touchpoint_lead_type_inbound_90d"].sum() > 0
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


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["as_of", "account_id"], ignore_index=True)


@pytest.mark.parametrize("chunk", [40, 1000])
def test_workers_reading_account_ranges_equal_pandas(
    scheduler: str, taxonomy: Taxonomy, tmp_path: Path, chunk: int
) -> None:
    """From a chunked world (row groups of account blocks) and from an unchunked one
    (touchpoints in time order: every range reads every row group), the parts the workers
    write are the pandas engine's rows."""
    from features.load import read_data_dir
    from features.pipeline.dask_files import write_features_dask
    from features.simulate.chunked import write_simulation_chunked

    data_dir = tmp_path / "data"
    write_simulation_chunked(data_dir, 90, 4, chunk_accounts=chunk, months=8, taxonomy=taxonomy)
    data = read_data_dir(data_dir, taxonomy)
    end = data.touchpoints["ts"].max().normalize()
    dates = [end - pd.Timedelta(days=90), end - pd.Timedelta(days=30)]
    expected = build_features(data, dates, taxonomy)
    result = write_features_dask(
        data_dir, dates, taxonomy, tmp_path / "out", scheduler=scheduler, npartitions=3
    )
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == result.partitions == 3
    got = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    got["account_id"] = got["account_id"].astype("str")
    pd.testing.assert_frame_equal(_sorted(got), _sorted(expected))
    assert result.rows == len(expected)
    assert result.rows_in == {name: len(frame) for name, frame in data.tables().items()}
    built = expected.drop(columns=["account_id", "as_of"])
    assert result.not_constant == set(built.columns[built.nunique(dropna=False) > 1])
    assert result.worker_peak_mb and all(v > 0 for v in result.worker_peak_mb.values())


def test_workers_report_each_ranges_problems(
    scheduler: str, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    from features.pipeline.dask_files import write_features_dask
    from features.problems import DataValidationError
    from features.simulate.chunked import write_simulation_chunked

    data_dir = tmp_path / "data"
    write_simulation_chunked(data_dir, 60, 4, months=4, taxonomy=taxonomy)
    touchpoints = pd.read_parquet(data_dir / "touchpoints.parquet")
    touchpoints.loc[[0, len(touchpoints) - 1], "account_id"] = "A999999"  # unknown account
    touchpoints.to_parquet(data_dir / "touchpoints.parquet", index=False)
    with pytest.raises(DataValidationError, match="account_id not in accounts"):
        write_features_dask(
            data_dir, [AS_OF], taxonomy, tmp_path / "out", scheduler=scheduler, npartitions=2
        )


def test_an_id_two_ranges_share_is_reported(
    scheduler: str, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """An event id given to a touchpoint of the first account and one of the last (two
    ranges) is a duplicate no range sees alone; the whole table's check reports it with
    both file rows. Rows of one account sharing an id stay the range's own problem."""
    from features.pipeline.dask_files import cross_range_duplicates, write_features_dask
    from features.problems import DataValidationError
    from features.simulate.chunked import write_simulation_chunked

    data_dir = tmp_path / "data"
    write_simulation_chunked(data_dir, 60, 4, months=4, taxonomy=taxonomy)
    assert cross_range_duplicates(data_dir) == []
    touchpoints = pd.read_parquet(data_dir / "touchpoints.parquet")
    accounts = touchpoints["account_id"].astype(str)
    first = int((accounts == accounts.min()).to_numpy().argmax())
    last = int((accounts == accounts.max()).to_numpy().argmax())
    touchpoints.loc[last, "event_id"] = touchpoints.loc[first, "event_id"]
    touchpoints.to_parquet(data_dir / "touchpoints.parquet", index=False)
    [problem] = cross_range_duplicates(data_dir)
    assert (problem.table, problem.column, problem.n_rows) == ("touchpoints", "event_id", 2)
    assert problem.rows == sorted([first + 1, last + 1])
    assert problem.sample == [str(touchpoints.loc[first, "event_id"])]
    with pytest.raises(DataValidationError, match="duplicate event_id"):
        write_features_dask(
            data_dir, [AS_OF], taxonomy, tmp_path / "out", scheduler=scheduler, npartitions=2
        )


def test_nba_features_on_dask_writes_parts(
    scheduler: str, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from features.simulate.chunked import write_simulation_chunked
    from nba.cli import app

    data_dir = tmp_path / "data"
    write_simulation_chunked(data_dir, 50, 4, months=4, taxonomy=taxonomy)
    out = tmp_path / "features"
    args = ["features", "--data", str(data_dir), "--as-of", "2024-04-01", "--out", str(out)]
    args += ["--engine", "dask", "--scheduler", scheduler, "--partitions", "3", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert printed["partitions"] == 3 and printed["rows"] == 50
    assert len(pd.read_parquet(out)) == 50
    assert len(printed["worker_peak_memory_mb"]) >= 1
