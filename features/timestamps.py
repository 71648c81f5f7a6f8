"""Time as the project handles it: UTC instants, and int64 nanoseconds for array work.

Naive timestamps are UTC everywhere. ``NaT`` becomes ``int64`` min in nanosecond arrays,
which compares as "long ago".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 10**9


def to_utc(value: Any) -> pd.Timestamp:
    """``value`` (anything ``pd.Timestamp`` accepts) as a UTC timestamp in nanoseconds;
    naive values are taken to be UTC. ``NaT`` stays ``NaT``."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return ts
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def to_ns(value: Any) -> int:
    """Nanoseconds since the epoch (UTC) of anything ``pd.Timestamp`` accepts; naive = UTC.
    Raises ``ValueError`` for a missing time."""
    ts = to_utc(value)
    if ts is pd.NaT:
        raise ValueError(f"not a time: {value!r}")
    return int(ts.value)


def from_ns(ns: int) -> pd.Timestamp:
    """The UTC timestamp of ``ns`` nanoseconds since the epoch."""
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def column_ns(values: pd.Series | pd.Index | np.ndarray | list[Any]) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of a column of times, as ``int64``; naive values are
    UTC, ``NaT`` is ``int64`` min. A datetime column is converted without parsing."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    dtype = getattr(values, "dtype", None)
    if not (isinstance(dtype, pd.DatetimeTZDtype) or (dtype is not None and dtype.kind == "M")):
        values = pd.to_datetime(pd.Series(values), utc=True)
    # to_numpy gives UTC wall times for tz-aware columns, and is much faster than going
    # through a DatetimeIndex for the few rows of one account.
    return np.asarray(values.to_numpy(dtype="datetime64[ns]")).view(np.int64)  # type: ignore[union-attr]
