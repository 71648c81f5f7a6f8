"""Time-based train/validation/test splits of point-in-time training sets.

A training set stacks rows for several as-of dates per account. Splits are by as-of date,
never by random row: every test as-of date is later than every validation date, which is
later than every training date. A row's label looks ``horizon_days`` forward from its as-of
date, so a training row whose label window reaches past the first validation as-of date
would have seen the period the validation rows are judged on; such dates are purged (left
out of every split) rather than trained on. The same holds between validation and test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from features.timestamps import column_ns, to_utc

AS_OF_COLUMN = "as_of"


class SplitError(InvalidInputError):
    """A training set cannot be split as asked, or a split leaks across time."""


@dataclass(frozen=True)
class AsOfSplit:
    """Which as-of dates go where. Each tuple is sorted ascending; together they hold every
    as-of date exactly once (``purged`` are the ones no split may use)."""

    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]
    purged: tuple[pd.Timestamp, ...]
    horizon_days: int


@dataclass(frozen=True)
class TimeSplit:
    """A training set's rows split by as-of date (row order and index kept)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    dates: AsOfSplit


def split_as_of_dates(
    as_of_dates: Iterable[pd.Timestamp] | pd.Series | pd.DatetimeIndex,
    *,
    valid_dates: int = 1,
    test_dates: int = 1,
    horizon_days: int = 0,
) -> AsOfSplit:
    """Assign distinct as-of dates to train, valid and test by time.

    The latest ``test_dates`` dates are the test set. The validation set is the latest
    ``valid_dates`` dates whose label window ``[date, date + horizon_days)`` ends on or before
    the first test date; training takes every earlier date whose label window ends on or
    before the first validation date (the first test date when ``valid_dates`` is 0). Dates
    in between are purged. Duplicates are ignored; order of the input does not matter.

    Raises ``SplitError`` when a date is missing (NaT), a count is out of range, or too few
    dates remain for a non-empty training set.
    """
    if test_dates < 1:
        raise SplitError(f"test_dates={test_dates}: expected at least 1 test as-of date")
    if valid_dates < 0:
        raise SplitError(f"valid_dates={valid_dates}: expected 0 or more validation dates")
    if horizon_days < 0:
        raise SplitError(f"horizon_days={horizon_days}: expected 0 or more days")
    index = as_datetime_index(as_of_dates)
    if index.hasnans:
        raise SplitError(f"as-of dates contain {int(np.sum(index.isna()))} missing values (NaT)")
    dates = index.unique().sort_values()
    gap = pd.Timedelta(days=horizon_days)

    if len(dates) < test_dates:
        raise SplitError(_too_few(dates, valid_dates, test_dates, horizon_days, "test"))
    test = dates[len(dates) - test_dates :]
    before_test = dates[dates + gap <= test[0]]
    if len(before_test) < valid_dates:
        raise SplitError(_too_few(dates, valid_dates, test_dates, horizon_days, "valid"))
    valid = before_test[len(before_test) - valid_dates :] if valid_dates else dates[:0]
    boundary = valid[0] if valid_dates else test[0]
    train = dates[dates + gap <= boundary]
    if len(train) == 0:
        raise SplitError(_too_few(dates, valid_dates, test_dates, horizon_days, "train"))
    used = train.union(valid).union(test)
    purged = dates.difference(used)
    return AsOfSplit(
        train=tuple(train),
        valid=tuple(valid),
        test=tuple(test),
        purged=tuple(purged),
        horizon_days=horizon_days,
    )


def _too_few(
    dates: pd.DatetimeIndex, valid_dates: int, test_dates: int, horizon_days: int, part: str
) -> str:
    shown = ", ".join(str(d.date()) for d in dates[:12]) + (", ..." if len(dates) > 12 else "")
    return (
        f"{len(dates)} distinct as-of dates ({shown or 'none'}) leave no room for the {part} "
        f"split: test_dates={test_dates}, valid_dates={valid_dates} and horizon_days="
        f"{horizon_days} need more as-of dates, spaced at least {horizon_days} days apart "
        "between splits, plus at least one training date"
    )


def split_by_as_of(
    frame: pd.DataFrame,
    *,
    valid_dates: int = 1,
    test_dates: int = 1,
    horizon_days: int = 0,
    as_of_column: str = AS_OF_COLUMN,
) -> TimeSplit:
    """Split a training set's rows by their as-of date (see ``split_as_of_dates``).

    Assumes one row per (account, as-of date) and a datetime ``as_of_column``. Rows on purged
    dates are dropped. Returns the three row subsets with the date assignment.
    """
    dates_column = _as_of_values(frame, as_of_column)
    dates = split_as_of_dates(
        dates_column,
        valid_dates=valid_dates,
        test_dates=test_dates,
        horizon_days=horizon_days,
    )
    return split_rows(frame, dates, dates_column)


def split_by_share(
    frame: pd.DataFrame,
    *,
    horizon_days: int,
    valid_share: float = 0.2,
    test_share: float = 0.2,
    as_of_column: str = AS_OF_COLUMN,
) -> TimeSplit:
    """Split rows with many distinct as-of dates (anchored moments) by time and share: the
    test split is the latest dates holding at least ``test_share`` of the rows, validation
    the latest dates holding ``valid_share`` whose label windows end by the first test date,
    training every earlier date whose window ends by the first validation date.

    Raises ``SplitError`` naming the span and the horizon when the dates cannot hold three
    non-empty splits with the horizon purged between them.
    """
    column = _as_of_values(frame, as_of_column)
    counts = column.value_counts().sort_index()
    dates, rows = pd.DatetimeIndex(counts.index), counts.to_numpy(dtype=np.int64)
    if len(dates) == 0:
        raise SplitError("training set has no rows to split")
    gap = pd.Timedelta(days=horizon_days)
    total = rows.sum()
    n_test = _latest_holding(rows, test_share * total)
    before_test = dates[: len(dates) - n_test]
    room = int(np.sum(before_test + gap <= dates[len(dates) - n_test]))
    n_valid = _latest_holding(rows[:room], valid_share * total) if room else 0
    # Fewer validation dates when the share would leave no training date before them.
    split = None
    for valid_dates in range(n_valid, 0, -1):
        try:
            split = split_as_of_dates(
                dates, valid_dates=valid_dates, test_dates=n_test, horizon_days=horizon_days
            )
            break
        except SplitError:
            continue
    if split is None:
        span = (dates[-1] - dates[0]).days
        raise SplitError(
            f"as-of dates span {dates[0]} .. {dates[-1]} ({span} days) with a "
            f"{horizon_days}-day horizon: no honest split (train, validation and test each "
            f"non-empty, {horizon_days} days purged between them); expected moments spanning "
            f"well over {2 * horizon_days} days, or a shorter horizon"
        ) from None
    return split_rows(frame, split, column)


def split_rows(frame: pd.DataFrame, dates: AsOfSplit, column: pd.Series | None = None) -> TimeSplit:
    """The rows of ``frame`` on each split's ``dates`` (slices when in as-of order; the
    as-of dates are ``column``, default ``frame["as_of"]``)."""
    return TimeSplit(
        train=rows_on(frame, dates.train, column),
        valid=rows_on(frame, dates.valid, column),
        test=rows_on(frame, dates.test, column),
        dates=dates,
    )


def rows_on(
    frame: pd.DataFrame, dates: Sequence[pd.Timestamp], column: pd.Series | None = None
) -> pd.DataFrame:
    """The rows of ``frame`` whose as-of date (``column``, default ``frame["as_of"]``) is
    one of ``dates``, index kept. Rows in as-of order (the monthly grid, the sets built from
    it) whose wanted dates are a run of theirs come as a slice of ``frame``, not a copy: at
    100,000 accounts each copy was as large as the set."""
    column = frame[AS_OF_COLUMN] if column is None else column
    if len(dates) == 0:
        return frame.iloc[:0]
    if column.is_monotonic_increasing:
        values = column_ns(column)
        want = np.sort(np.array([to_utc(d).value for d in dates], dtype=np.int64))
        lo = int(np.searchsorted(values, want[0], side="left"))
        hi = int(np.searchsorted(values, want[-1], side="right"))
        inside = values[lo:hi]
        distinct = inside[np.r_[True, inside[1:] != inside[:-1]]] if len(inside) else inside
        if np.isin(distinct, want).all():
            return frame.iloc[lo:hi]
    return frame[column.isin(list(dates)).to_numpy()]


def _latest_holding(rows: np.ndarray, at_least: float) -> int:
    """How many of the latest dates hold at least ``at_least`` rows (all if none do)."""
    if len(rows) == 0:
        return 0
    cumulative = np.cumsum(rows[::-1])
    return min(int(np.searchsorted(cumulative, at_least)) + 1, len(rows))


def check_time_split(
    split: TimeSplit,
    *,
    horizon_days: int,
    key_columns: Sequence[str] = ("account_id", AS_OF_COLUMN),
    as_of_column: str = AS_OF_COLUMN,
) -> None:
    """Raise ``SplitError`` unless the split is safe to train and evaluate on.

    Checks, on the rows themselves (not on ``split.dates``): every label window of a training
    row, ``[as_of, as_of + horizon_days)``, ends on or before the first validation as-of (the
    first test as-of when validation is empty); every validation label window ends on or
    before the first test as-of; and no ``key_columns`` combination appears in two splits.
    """
    gap = pd.Timedelta(days=horizon_days)
    parts = {"train": split.train, "valid": split.valid, "test": split.test}
    as_of = {name: _as_of_values(frame, as_of_column) for name, frame in parts.items()}
    later_of = {"train": ("valid", "test"), "valid": ("test",)}
    for name, later_names in later_of.items():
        if as_of[name].empty:
            continue
        later = next((as_of[n] for n in later_names if not as_of[n].empty), None)
        if later is None:
            continue
        first_later = later.min()
        reaching = as_of[name][as_of[name] + gap > first_later]
        if not reaching.empty:
            raise SplitError(
                f"{name} split column {as_of_column!r}: {len(reaching)} rows have a label "
                f"window of {horizon_days} days reaching past the next split's first as-of "
                f"{first_later} (latest offending as-of {reaching.max()}); expected as-of + "
                f"{horizon_days} days <= {first_later}"
            )
    keys = list(key_columns)
    stacked = pd.concat(
        [frame[keys].assign(_split=name) for name, frame in parts.items()], ignore_index=True
    )
    unique_per_split = stacked.drop_duplicates()
    shared = unique_per_split[unique_per_split.duplicated(subset=keys, keep=False)]
    if not shared.empty:
        sample = shared.drop_duplicates(subset=keys).head(5)[keys].to_dict("records")
        raise SplitError(
            f"{len(shared.drop_duplicates(subset=keys))} rows keyed by {keys} appear in more "
            f"than one split, e.g. {sample}; expected each key in exactly one split"
        )


def _as_of_values(frame: pd.DataFrame, as_of_column: str) -> pd.Series:
    if as_of_column not in frame.columns:
        raise SplitError(
            f"training set has no column {as_of_column!r} (columns: {list(frame.columns)[:10]}"
            f"{', ...' if frame.shape[1] > 10 else ''}); expected the as-of date of each row"
        )
    column = frame[as_of_column]
    if not pd.api.types.is_datetime64_any_dtype(column):
        raise SplitError(
            f"training set column {as_of_column!r} has dtype {column.dtype}; expected "
            "datetime64 (e.g. datetime64[ns, UTC])"
        )
    return column


def as_datetime_index(
    dates: Iterable[pd.Timestamp] | pd.Series | pd.DatetimeIndex,
) -> pd.DatetimeIndex:
    """Dates as a DatetimeIndex, without a Python loop when they already are a column."""
    if isinstance(dates, pd.Series | pd.Index):
        return pd.DatetimeIndex(dates)
    return pd.DatetimeIndex(list(dates))
