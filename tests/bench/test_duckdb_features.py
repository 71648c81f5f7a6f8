"""The DuckDB yardstick computes the same vocabulary features as ``nba features``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.duckdb_features import duckdb_features, vocabulary_differences
from features.load import read_data_dir
from features.pipeline import build_features
from features.simulate import SimulationParams, simulate, write_simulation
from features.taxonomy import Taxonomy, load_taxonomy


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, taxonomy: Taxonomy) -> Path:
    out = tmp_path_factory.mktemp("world") / "data"
    sim = simulate(
        150, seed=3, months=15, taxonomy=taxonomy, params=SimulationParams.profile("legacy")
    )
    write_simulation(sim, out)
    return out


@pytest.mark.parametrize("days_before_end", [20, 200])
def test_yardstick_equals_our_vocabulary_features(
    data_dir: Path, taxonomy: Taxonomy, days_before_end: int
) -> None:
    data = read_data_dir(data_dir, taxonomy)
    as_of = data.touchpoints["ts"].max().normalize() - pd.Timedelta(days=days_before_end)
    ours = build_features(data, [as_of], taxonomy)
    theirs = duckdb_features(data_dir, as_of, taxonomy)
    assert theirs.shape[1] - 1 == 5 * 69  # every vocabulary value of the default taxonomy
    assert ours["n_channel_email_365d"].sum() > 0
    assert ours["days_since_content_phase_selection"].notna().any()
    assert vocabulary_differences(ours, theirs) == []


def test_a_differing_value_is_named(data_dir: Path, taxonomy: Taxonomy) -> None:
    data = read_data_dir(data_dir, taxonomy)
    as_of = data.touchpoints["ts"].max().normalize()
    ours = build_features(data, [as_of], taxonomy)
    theirs = duckdb_features(data_dir, as_of, taxonomy)
    theirs.loc[3, "n_role_finance_90d"] += 1
    theirs.loc[5, "days_since_event_view"] = 0.5
    assert vocabulary_differences(ours, theirs) == ["days_since_event_view", "n_role_finance_90d"]
