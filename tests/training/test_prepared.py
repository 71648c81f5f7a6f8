"""`training.train.Prepared`: the grid's features computed once per date and handed out
without copies, and none kept beside the last model's set."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features
from features.schema import JourneyData
from features.simulate import simulate
from features.taxonomy import load_taxonomy
from training.datasets import as_of_grid
from training.next_content import HORIZON_DAYS
from training.train import Prepared, prepare_data


@pytest.fixture(scope="module")
def prepared_world() -> tuple[Prepared, JourneyData]:
    taxonomy = load_taxonomy()
    sim = simulate(150, 5, taxonomy=taxonomy)
    prepared = prepare_data(sim.data, taxonomy, n_dates=4)
    return prepared, sim.data


def _fresh(data: JourneyData, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The features on ``dates`` as the grid holds them: sorted, floats as float32."""
    frame = build_features(data, dates, load_taxonomy())
    floats = {c: np.float32 for c in frame.columns if frame[c].dtype == np.float64}
    assert floats  # the pipeline's recencies and shares
    frame = frame.astype(floats)
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


def test_planned_models_read_slices_of_one_frame(
    prepared_world: tuple[Prepared, JourneyData],
) -> None:
    _, data = prepared_world
    taxonomy = load_taxonomy()
    prepared = prepare_data(data, taxonomy, n_dates=4)
    prepared.plan(["phase", "next-content"])
    content_dates = as_of_grid(data, 4, horizon_days=HORIZON_DAYS)
    assert set(content_dates) - set(prepared.as_of)  # next content reads later dates too
    phase_rows = prepared.features
    grid = prepared._grid
    assert grid is not None
    assert prepared.feature_rows == len(grid)  # every planned date computed once
    content_rows = prepared.features_on(content_dates)
    assert prepared.feature_rows == len(grid) and prepared._grid is grid  # nothing added
    pd.testing.assert_frame_equal(phase_rows, _fresh(data, prepared.as_of))
    pd.testing.assert_frame_equal(content_rows, _fresh(data, content_dates))
    column = next(c for c in grid.columns if grid[c].dtype == np.int32)
    for rows in (phase_rows, content_rows):
        assert np.shares_memory(rows[column].to_numpy(), grid[column].to_numpy())


def test_a_step_timed_inside_another_counts_once(
    prepared_world: tuple[Prepared, JourneyData],
) -> None:
    prepared = Prepared(prepared_world[1], None, [], load_taxonomy())
    started = time.perf_counter()
    with prepared.timed("set_s"), prepared.timed("features_s"):
        sum(range(200_000))
    took = time.perf_counter() - started
    assert prepared.seconds["features_s"] > 0 and prepared.seconds["set_s"] >= 0
    assert prepared.seconds["set_s"] + prepared.seconds["features_s"] <= took


def test_given_features_are_held_as_float32_and_left_as_they_were() -> None:
    taxonomy = load_taxonomy()
    sim = simulate(60, 6, taxonomy=taxonomy)
    dates = as_of_grid(sim.data, 2)
    given = build_features(sim.data, dates, taxonomy)
    before = given.dtypes.copy()
    prepared = Prepared.from_features(sim.data, dates, given, taxonomy)
    pd.testing.assert_series_equal(given.dtypes, before)  # the caller's frame is not changed
    held = prepared.features
    assert not (held.dtypes == np.float64).any()
    floats = [c for c in given.columns if given[c].dtype == np.float64]
    np.testing.assert_array_equal(
        held[floats].to_numpy(),
        given.sort_values(["as_of", "account_id"], kind="stable")[floats].to_numpy(np.float32),
    )
