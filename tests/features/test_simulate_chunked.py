"""A world written in account chunks: one chunk is today's run, the same seed and chunk size
give the same world, and the chunks together are valid data whose ids run on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.load import read_data_dir
from features.simulate import load_truth, simulate, write_simulation
from features.simulate.chunked import chunk_seed, chunk_sizes, write_simulation_chunked
from features.taxonomy import Taxonomy, load_taxonomy

ACCOUNTS, SEED, MONTHS = 90, 4, 4


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    names = [p.stem for p in out.glob("*.parquet")] + [
        f"truth/{p.stem}" for p in (out / "truth").glob("*.parquet")
    ]
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in sorted(names)}


def _chunked(out: Path, chunk: int, taxonomy: Taxonomy) -> dict[str, pd.DataFrame]:
    write_simulation_chunked(
        out, ACCOUNTS, SEED, chunk_accounts=chunk, months=MONTHS, taxonomy=taxonomy
    )
    return _tables(out)


def test_one_chunk_is_the_unchunked_run(tmp_path: Path, taxonomy: Taxonomy) -> None:
    write_simulation(simulate(ACCOUNTS, SEED, months=MONTHS, taxonomy=taxonomy), tmp_path / "a")
    expected = _tables(tmp_path / "a")
    got = _chunked(tmp_path / "b", ACCOUNTS, taxonomy)
    assert got.keys() == expected.keys()
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


def test_same_seed_and_chunk_size_same_world(tmp_path: Path, taxonomy: Taxonomy) -> None:
    first = _chunked(tmp_path / "a", 40, taxonomy)
    second = _chunked(tmp_path / "b", 40, taxonomy)
    for name, frame in first.items():
        pd.testing.assert_frame_equal(second[name], frame, obj=name)
    other = _chunked(tmp_path / "c", 30, taxonomy)
    assert not other["touchpoints"].equals(first["touchpoints"])


def test_chunks_are_whole_accounts_with_running_ids(tmp_path: Path, taxonomy: Taxonomy) -> None:
    out = tmp_path / "w"
    summary = write_simulation_chunked(
        out, ACCOUNTS, SEED, chunk_accounts=40, months=MONTHS, taxonomy=taxonomy
    )
    assert summary.chunks == chunk_sizes(ACCOUNTS, 40) == [40, 40, 10]
    data = read_data_dir(out, taxonomy)  # valid: unique ids, every reference found
    assert summary.rows == {name: len(frame) for name, frame in data.tables().items()}
    assert data.accounts["account_id"].tolist() == [f"A{i:06d}" for i in range(1, ACCOUNTS + 1)]
    for name, id_column in (("touchpoints", "event_id"), ("exposures", "exposure_id")):
        numbers = data.tables()[name][id_column].str[1:].astype(int)
        assert numbers.tolist() == list(range(1, len(numbers) + 1))
    # Chunk 1 is chunk 0's model with its own seed: accounts 41-80 are that run's 1-40.
    alone = simulate(40, chunk_seed(SEED, 1), months=MONTHS, taxonomy=taxonomy).data.accounts
    ours = data.accounts.iloc[40:80].reset_index(drop=True)
    pd.testing.assert_series_equal(ours["employees"], alone["employees"])
    assert len(load_truth(out).accounts) == ACCOUNTS
