"""Journey rows between the database and pandas: canonical frames (``features.schema``
dtypes) from database rows, and database rows from canonical frames.

In the database every time is nanoseconds since the epoch, vocabulary values are text and
list columns are JSON (see ``serving.store.tables``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from features.schema import TABLES
from features.taxonomy import Taxonomy
from serving.store.tables import BY_NAME

_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def schema_select(name: str) -> Any:
    """SELECT of table ``name``'s data-contract columns, in ``features.schema`` order."""
    table = BY_NAME[name]
    return select(*(table.c[c] for c in TABLES[name].names))


def canonical_frame(name: str, rows: Sequence[Any], taxonomy: Taxonomy) -> pd.DataFrame:
    """Database rows of table ``name`` as a frame in the canonical dtypes of
    ``features.schema`` (times from ns, vocabulary columns as the taxonomy's categories).

    Built column by column with the dtype's own constructor: on the per-request path
    (one account, ~100 rows) generic ``astype`` calls would cost more than the queries."""
    out: dict[str, Any] = {}
    for position, column in enumerate(TABLES[name].columns):
        values = [r[position] for r in rows]
        if column.kind == "datetime":
            ns = np.array([_NAT if v is None else v for v in values], dtype=np.int64)
            out[column.name] = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")
        elif column.kind == "list":
            lists = np.empty(len(values), dtype=object)
            lists[:] = [list(v) if v is not None else [] for v in values]
            out[column.name] = lists
        elif column.kind == "int" and column.nullable:
            out[column.name] = pd.array(values, dtype="Int64")
        elif column.kind in ("int", "float"):
            # np.float64 turns None into NaN
            numbers = np.array(values, dtype=np.float64)
            out[column.name] = numbers.astype(np.int64) if column.kind == "int" else numbers
        elif column.kind == "category":
            assert column.vocabulary is not None
            vocabulary = pd.CategoricalDtype(taxonomy.vocabulary(column.vocabulary))
            out[column.name] = pd.Categorical(values, dtype=vocabulary)
        else:
            out[column.name] = pd.array(values, dtype="str")
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)), copy=False)


def db_rows(name: str, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A canonical frame's rows as tuples of database values (Python scalars, None for
    missing, times in ns, lists as JSON text, None for an empty one), in ``TABLES[name]``
    column order."""
    columns: list[list[Any]] = []
    for column in TABLES[name].columns:
        if column.name not in frame:
            columns.append([None] * len(frame))
            continue
        series = frame[column.name]
        missing = series.isna().to_numpy() if column.kind != "list" else None
        if column.kind == "datetime":
            ns = pd.to_datetime(series, utc=True).to_numpy(dtype="datetime64[ns]").view(np.int64)
            values: np.ndarray = ns.astype(object) if missing is not None and missing.any() else ns
        elif column.kind == "category" and isinstance(series.dtype, pd.CategoricalDtype):
            lookup = np.array([*map(str, series.cat.categories), None], dtype=object)
            columns.append(lookup[series.cat.codes.to_numpy()].tolist())
            continue
        elif column.kind == "int":
            if missing is not None and missing.any():
                columns.append(
                    [None if m else int(v) for v, m in zip(series, missing, strict=True)]
                )
                continue
            values = series.to_numpy(dtype=np.int64)
        elif column.kind == "float":
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif column.kind == "list":
            # none given is NULL, so that loading it keeps what is stored (see bulk)
            columns.append([json.dumps(list(v)) if len(v) else None for v in series])
            continue
        else:
            columns.append(series.to_numpy(dtype=object, na_value=None).tolist())  # type: ignore[call-overload]
            continue
        if missing is not None and missing.any():
            values = values.astype(object)
            values[missing] = None
        columns.append(values.tolist())
    return list(zip(*columns, strict=True))
