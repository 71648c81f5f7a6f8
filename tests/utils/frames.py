"""Comparing feature frames."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assert_rows_equal(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    """Every column equal, in the same order and dtype: counts and categories exactly,
    numbers to 1e-9 relative (sums of dwell minutes and revenue may add the same values in
    another order)."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:
        e, g = expected[column], got[column]
        assert g.dtype == e.dtype, column
        if e.dtype.kind == "f":
            np.testing.assert_allclose(g.to_numpy(), e.to_numpy(), rtol=1e-9, err_msg=column)
        else:
            assert g.astype(object).tolist() == e.astype(object).tolist(), column
