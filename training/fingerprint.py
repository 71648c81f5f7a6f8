"""A stable fingerprint of a training set: which data, which as-of dates.

Logged with every training run so that two runs can be told apart (or proven equal) by the
data they saw, not by file names or dates of export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from training.splits import AS_OF_COLUMN, as_datetime_index

# Bump when the recipe below changes, so old and new fingerprints never compare equal.
FINGERPRINT_VERSION = 1


class FingerprintError(InvalidInputError):
    """A training set cannot be fingerprinted as asked."""


def fingerprint_training_set(
    frame: pd.DataFrame,
    as_of_dates: Iterable[pd.Timestamp] | pd.DatetimeIndex | None = None,
    *,
    as_of_column: str = AS_OF_COLUMN,
) -> str:
    """Return a SHA-256 hex digest of a training set's content and its as-of dates.

    The same frame (same column names, dtypes, row order and cell values) with the same
    as-of dates gives the same digest in any process; a changed cell, column name, dtype,
    row order or as-of date gives a different one. The index is ignored. ``as_of_dates``
    defaults to the distinct values of ``as_of_column``; pass them explicitly when the set
    was built for dates that yielded no rows. Cells are hashed column-wise with
    ``pandas.util.hash_pandas_object`` (about a second per million rows of 80 columns);
    object columns holding unhashable values (lists) are hashed through their ``str``.
    """
    if as_of_dates is None:
        if as_of_column not in frame.columns:
            raise FingerprintError(
                f"training set has no column {as_of_column!r} and no as_of_dates were given; "
                "expected one of them to name the as-of dates of the set"
            )
        as_of_dates = pd.DatetimeIndex(frame[as_of_column].dropna())
    dates = as_datetime_index(as_of_dates)
    if dates.hasnans:
        raise FingerprintError(
            f"as_of_dates contain {int(np.sum(dates.isna()))} missing values (NaT); "
            "expected real dates"
        )
    digest = hashlib.sha256()
    header = [
        f"fingerprint-v{FINGERPRINT_VERSION}",
        f"rows={len(frame)}",
        *(f"column={name!s}:{dtype!s}" for name, dtype in frame.dtypes.items()),
        *(f"as_of={d.isoformat()}" for d in dates.unique().sort_values()),
    ]
    digest.update("\n".join(header).encode())
    if len(frame) and frame.shape[1]:
        digest.update(_row_hashes(frame).tobytes())
    return digest.hexdigest()


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:
        # Lists (e.g. content phases) are unhashable; their str is a faithful stand-in.
        frame = frame.copy()
        for name in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
            frame[name] = frame[name].map(str, na_action="ignore")
        hashed = pd.util.hash_pandas_object(frame, index=False)
    return hashed.to_numpy(dtype=np.uint64)
