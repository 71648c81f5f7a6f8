"""Small DataFrame helpers shared by the layers."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def select_columns(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """``frame[names]`` by position: selecting by a list of labels on pandas' string column
    index costs about half a millisecond per call, most of what one account's few rows cost
    (serving does it several times per request). KeyError naming the absent columns."""
    where = {c: i for i, c in enumerate(frame.columns.tolist())}
    absent = [c for c in names if c not in where]
    if absent:
        raise KeyError(f"{absent[:5]} not in the frame's columns ({len(absent)} in all)")
    return frame.iloc[:, [where[c] for c in names]]
