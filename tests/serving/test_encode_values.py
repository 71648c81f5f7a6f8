"""One row given as plain values encodes to the numbers its one-row frame encodes to,
whatever a value's type (None, NaN, pd.NA, int, bool, a category's level)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.model_input import ModelInput

SPEC = ModelInput(("n", "x", "phase", "flag"), {"phase": {"awareness": 0, "selection": 1}})


def test_values_encode_as_their_frame() -> None:
    rows = [
        {"n": 3, "x": 0.25, "phase": "selection", "flag": True},
        {"n": None, "x": np.nan, "phase": None, "flag": False},
        {"n": 7, "x": pd.NA, "phase": "unseen", "flag": 1},  # pd.NA: the slower path
        {"n": 2**40, "x": -1.5, "phase": "awareness", "flag": 0.5},
    ]
    for values in rows:
        got = SPEC.encode_values(values)
        frame = pd.DataFrame([values], dtype=object)
        want = SPEC.encode(frame)
        np.testing.assert_array_equal(got, want)
        assert got.shape == (1, 4) and got.dtype == np.float64
