"""`training.train.Prepared`: the grid's features computed once per date and handed out
without copies, and none kept beside the last model's set."""

from __future__ import annotations

import pandas as pd
import pytest

from features.pipeline import build_features
from features.schema import JourneyData
from features.simulate import simulate
from features.taxonomy import load_taxonomy
from training.datasets import as_of_grid
from training.train import Prepared, prepare_data


@pytest.fixture(scope="module")
def prepared_world() -> tuple[Prepared, JourneyData]:
    taxonomy = load_taxonomy()
    sim = simulate(150, 5, taxonomy=taxonomy)
    prepared = prepare_data(sim.data, taxonomy, n_dates=4)
    return prepared, sim.data


def _fresh(data: JourneyData, dates: list[pd.Timestamp]) -> pd.DataFrame:
    frame = build_features(data, dates, load_taxonomy())
    return frame.sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)


def test_the_grid_is_handed_out_once_computed(prepared_world: tuple[Prepared, JourneyData]) -> None:
    prepared, data = prepared_world
    grid = prepared.features
    assert prepared.features is grid  # no copy per model
    pd.testing.assert_frame_equal(grid, _fresh(data, prepared.as_of))


def test_other_dates_are_added_and_a_subset_keeps_the_order(
    prepared_world: tuple[Prepared, JourneyData],
) -> None:
    prepared, data = prepared_world
    later = as_of_grid(data, 3, horizon_days=7)
    assert set(later) - set(prepared.as_of)  # a date the grid did not hold
    frame = prepared.features_on(later)
    pd.testing.assert_frame_equal(frame, _fresh(data, later))
    pd.testing.assert_frame_equal(prepared.features, _fresh(data, prepared.as_of))


def test_the_last_use_keeps_no_copy(prepared_world: tuple[Prepared, JourneyData]) -> None:
    prepared, data = prepared_world
    prepared.keep_features = False
    try:
        frame = prepared.features_on(prepared.as_of[:2])
        assert prepared._grid is None and not prepared._dates
        pd.testing.assert_frame_equal(frame, _fresh(data, prepared.as_of[:2]))
    finally:
        prepared.keep_features = True
