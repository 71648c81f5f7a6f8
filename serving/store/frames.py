"""Journey rows between the database and pandas: canonical frames (``features.schema``
dtypes) from database rows, and database rows from canonical frames.

In the database every time is nanoseconds since the epoch, vocabulary values are text and
list columns are JSON (see ``serving.store.tables``). Custom attributes
(``features.attributes``) are one JSON object per row in the database and one column per
attribute name in a frame."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from features.attributes import ATTRIBUTE_TABLES
from features.schema import TABLES
from features.taxonomy import Taxonomy
from serving.store.tables import BY_NAME

_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds
ATTRIBUTES_COLUMN = "attributes"


def store_columns(name: str) -> list[str]:
    """Table ``name``'s stored columns: the data contract's, in ``features.schema`` order,
    then ``attributes`` on the tables that hold custom attributes."""
    extra = [ATTRIBUTES_COLUMN] if name in ATTRIBUTE_TABLES else []
    return [*TABLES[name].names, *extra]


def schema_select(name: str) -> Any:
    """SELECT of table ``name``'s :func:`store_columns`."""
    table = BY_NAME[name]
    return select(*(table.c[c] for c in store_columns(name)))


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
    if name in ATTRIBUTE_TABLES:
        out.update(_attribute_columns([r[len(TABLES[name].columns)] for r in rows]))
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)), copy=False)


def _attribute_columns(objects: Sequence[Any]) -> dict[str, Any]:
    """One column per attribute name found in the rows' JSON objects (None: no attributes),
    sorted by name: numbers as float64 when every value is a number, else text."""
    names = sorted({k for o in objects if o for k in o})
    out: dict[str, Any] = {}
    for key in names:
        values = [o.get(key) if o else None for o in objects]
        if all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            out[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            out[key] = pd.array([None if v is None else str(v) for v in values], dtype="str")
    return out


def attribute_objects(name: str, frame: pd.DataFrame) -> list[str | None]:
    """The JSON text of each row's custom attributes: the frame's columns beyond the data
    contract's (validation kept only declared ones), missing values left out; None for a
    row without any."""
    names = [c for c in frame.columns if c not in TABLES[name].names]
    if not names:
        return [None] * len(frame)
    columns = [
        frame[c].to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload]
        for c in names
    ]
    out: list[str | None] = []
    for values in zip(*columns, strict=True):
        given = {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(names, values, strict=True)
            if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
        out.append(json.dumps(given) if given else None)
    return out


def db_rows(name: str, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A canonical frame's rows as tuples of database values (Python scalars, None for
    missing, times in ns, lists as JSON text (None for an empty one) and attributes as JSON
    text), in :func:`store_columns` order."""
    columns = _contract_columns(name, frame)
    if name in ATTRIBUTE_TABLES:
        columns.append(attribute_objects(name, frame))
    return list(zip(*columns, strict=True))


def _contract_columns(name: str, frame: pd.DataFrame) -> list[list[Any]]:
    """The data-contract columns of ``frame`` as lists of database values."""
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
    return columns
