"""Time splits: later dates test, label windows purged, nothing shared across splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.splits import (
    SplitError,
    check_time_split,
    rows_on,
    split_as_of_dates,
    split_by_as_of,
)

DATES = list(pd.date_range("2024-01-01", periods=12, freq="MS", tz="UTC"))


def frame(dates: list[pd.Timestamp], accounts: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        [{"account_id": f"A{i}", "as_of": d} for d in dates for i in range(accounts)]
    )


def test_splits_follow_time_and_purge_label_windows() -> None:
    split = split_as_of_dates(reversed(DATES), valid_dates=1, test_dates=2, horizon_days=60)
    assert split.test == tuple(DATES[10:])
    # valid's 60-day window must end by the first test date (2024-11-01): 2024-09-01
    assert split.valid == (DATES[8],)
    assert split.train == tuple(DATES[:7])  # up to 2024-07-01, 62 days before 2024-09-01
    assert split.purged == (DATES[7], DATES[9])
    assert max(split.train) + pd.Timedelta(days=60) <= min(split.valid)


def test_split_rows_pass_the_leak_check() -> None:
    rows = frame(DATES)
    split = split_by_as_of(rows, valid_dates=2, test_dates=2, horizon_days=30)
    check_time_split(split, horizon_days=30)
    assert len(split.train) + len(split.valid) + len(split.test) + 3 * len(
        split.dates.purged
    ) == len(rows)


def test_leak_check_catches_overlapping_label_windows_and_shared_rows() -> None:
    rows = frame(DATES)
    split = split_by_as_of(rows, valid_dates=1, test_dates=1, horizon_days=0)
    with pytest.raises(SplitError, match="label window of 90 days"):
        check_time_split(split, horizon_days=90)
    shared = type(split)(
        split.train, split.valid, pd.concat([split.test, split.valid]), split.dates
    )
    with pytest.raises(SplitError, match="appear in more than one split"):
        check_time_split(shared, horizon_days=0)


def test_too_few_dates_is_a_clear_error() -> None:
    with pytest.raises(SplitError, match="leave no room for the valid split"):
        split_as_of_dates(DATES[:3], valid_dates=1, test_dates=1, horizon_days=90)
    with pytest.raises(SplitError, match="no column 'as_of'"):
        split_by_as_of(pd.DataFrame({"x": [1]}))


def test_rows_in_as_of_order_split_into_slices_of_the_set() -> None:
    rows = frame(DATES).assign(x=range(36))
    split = split_by_as_of(rows, valid_dates=1, test_dates=2, horizon_days=30)
    shuffled = split_by_as_of(
        rows.sample(frac=1, random_state=0).reset_index(drop=True),
        valid_dates=1,
        test_dates=2,
        horizon_days=30,
    )
    for name in ("train", "valid", "test"):
        part, other = getattr(split, name), getattr(shuffled, name)
        assert set(part["as_of"]) == set(getattr(split.dates, name))
        # A slice, not a copy: the set's own values.
        assert np.shares_memory(part["x"].to_numpy(), rows["x"].to_numpy())
        pd.testing.assert_frame_equal(
            part.reset_index(drop=True),
            other.sort_values(["as_of", "account_id"]).reset_index(drop=True),
        )


def test_dates_that_are_not_a_run_of_the_rows_dates_are_selected_not_sliced() -> None:
    rows = frame(DATES).assign(x=range(36))
    picked = rows_on(rows, [DATES[2], DATES[5]])  # the dates between are not wanted
    assert set(picked["as_of"]) == {DATES[2], DATES[5]} and len(picked) == 6
    run = rows_on(rows, DATES[2:5])
    assert set(run["as_of"]) == set(DATES[2:5])
    assert np.shares_memory(run["x"].to_numpy(), rows["x"].to_numpy())
