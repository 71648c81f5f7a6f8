"""Positions of ids in an id column, and their memo for validation and the pipeline."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from features import id_codes
from features.id_codes import id_positions


@pytest.mark.parametrize("dtype", ["str", object])
def test_positions_of_ids_missing_and_absent_are_minus_one(dtype: object) -> None:
    ids = pd.Series(["A1", "A2", "A3"], dtype="str")
    values = pd.Series(["A3", None, "A1", "nope", "A3"], dtype=dtype)  # type: ignore[call-overload]
    assert id_positions(values, ids).tolist() == [2, -1, 0, -1, 2]


def test_long_columns_are_looked_up_once_while_they_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(id_codes, "MEMO_MIN_ROWS", 2)
    ids = pd.Series(["A1", "A2"], dtype="str")
    values = pd.Series(["A2", "A1", "A2"], dtype="str")
    first = id_positions(values, ids)
    assert id_positions(values, ids) is first
    assert not first.flags.writeable  # shared: nobody may change it
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 5
    # Other values (equal or not) are looked up anew, and a dropped column leaves the memo.
    again = pd.Series(["A2", "A1", "A2"], dtype="str")
    assert id_positions(again, ids) is not first
    np.testing.assert_array_equal(id_positions(again, ids), first)
    before = len(id_codes._memo)
    del values, again
    gc.collect()
    assert len(id_codes._memo) == before - 2
