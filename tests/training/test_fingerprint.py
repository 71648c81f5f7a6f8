"""Training-set fingerprints: equal for equal data, different when anything changes."""

from __future__ import annotations

import pandas as pd
import pytest

from training.fingerprint import FingerprintError, fingerprint_training_set


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "as_of": pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True),
            "n": [1, 2],
            "phases": [["awareness"], ["selection", "purchase"]],
        }
    )


def test_same_data_same_fingerprint_and_any_change_differs() -> None:
    base = fingerprint_training_set(frame())
    assert base == fingerprint_training_set(frame())
    changed = frame()
    changed.loc[1, "n"] = 3
    assert fingerprint_training_set(changed) != base
    assert fingerprint_training_set(frame().iloc[::-1]) != base
    later = pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True)
    assert fingerprint_training_set(frame(), later) != base
    assert len(base) == 64


def test_missing_as_of_is_an_error() -> None:
    with pytest.raises(FingerprintError, match="no column 'as_of'"):
        fingerprint_training_set(pd.DataFrame({"x": [1]}))
