"""Positions of ids in another table's id column, computed once per pair of columns.

Validation checks that every touchpoint's ``account_id`` is an account, and the feature
pipeline then needs each touchpoint's account position: the same hash lookup of millions
of strings. Arrow arrays never change, so the positions found for one pair of Arrow-backed
columns hold for as long as both arrays live; they are kept that long (weak references to
the arrays drop them after) and shared read-only.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Shorter columns are cheap to look up again; not worth holding their positions.
MEMO_MIN_ROWS = 100_000

_memo: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, np.ndarray]] = {}


def _arrow(series: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow array behind an Arrow-backed string column (None for other dtypes)."""
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        array = series.array._pa_array
        return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    return None


def id_positions(values: pd.Series, ids: pd.Series) -> np.ndarray:
    """Position of each of ``values`` in ``ids`` (its first, for repeated ids), -1 where
    the value is missing or not in ``ids``; int64, read-only.

    Arrow-backed strings are looked up by Arrow's hash kernel (and remembered for long
    columns, see the module docstring); other dtypes by ``pd.factorize`` then
    ``get_indexer`` on the distinct values.
    """
    arrow_values, arrow_ids = _arrow(values), _arrow(ids)
    if arrow_values is None or arrow_ids is None:
        return _factorized_positions(values, ids)
    key = (id(arrow_values), id(arrow_ids))
    known = _memo.get(key)
    if known is not None and known[0]() is arrow_values and known[1]() is arrow_ids:
        return known[2]
    value_set = arrow_ids.combine_chunks().cast(arrow_values.type)
    found = pc.index_in(arrow_values, value_set=value_set).fill_null(-1).to_numpy()
    positions = np.asarray(found, dtype=np.int64)
    positions.flags.writeable = False
    if len(positions) >= MEMO_MIN_ROWS:

        def forget(_: object) -> None:
            _memo.pop(key, None)

        _memo[key] = (
            weakref.ref(arrow_values, forget),
            weakref.ref(arrow_ids, forget),
            positions,
        )
    return positions


def _factorized_positions(values: pd.Series, ids: pd.Series) -> np.ndarray:
    index = pd.Index(ids.astype("str"))
    value_codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    lookup = index.get_indexer(pd.Index(uniques).astype("str"))
    return np.where(value_codes >= 0, lookup[value_codes], -1).astype(np.int64)
