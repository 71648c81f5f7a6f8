"""How a DataFrame becomes the float matrix a served model's booster takes
(:class:`ModelInput`, :func:`model_input`), and the error of a model that cannot be loaded.

Single-threaded prediction on the request path (``PREDICT_THREADS``): see
``serving.model_set``'s docstring (OpenMP and forked workers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from features.errors import UnavailableError
from features.frames import select_columns
from models.fitting import fitted_categories, model_columns

# Predict single-threaded on the request path (see the module docstring).
PREDICT_THREADS = 1
# Frames up to this many rows are encoded through one object array (ModelInput.encode).
SMALL_FRAME_ROWS = 8


class ModelLoadError(UnavailableError):
    """A model set that cannot be loaded; the message names the model, alias and cause."""


@dataclass(frozen=True)
class ModelInput:
    """How a DataFrame becomes the float matrix a model's booster takes: its feature
    columns in order and, for the categorical ones, value -> code as in training (the
    levels the estimator keeps, ``models.fitting.fitted_categories``; a model trained on
    pandas categories before that records them in LightGBM's ``pandas_categorical``)."""

    columns: tuple[str, ...]
    categories: Mapping[str, Mapping[str, int]]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """``frame``'s model columns as float64 (categories as their training codes, unknown
        or missing values as NaN; a categorical column already numeric, such as a logged
        input example, is taken as codes), shape ``(len(frame), len(columns))``. KeyError
        when the frame lacks a model column."""
        if len(frame) <= SMALL_FRAME_ROWS:
            return self._encode_small(frame)
        cols = list(self.columns)
        sub = select_columns(frame, cols)
        out = np.empty((len(frame), len(cols)), dtype=np.float64)
        as_codes = {
            j
            for j, c in enumerate(cols)
            if c in self.categories and pd.api.types.is_numeric_dtype(sub.dtypes.iloc[j])
        }
        numeric = [j for j, c in enumerate(cols) if c not in self.categories or j in as_codes]
        if numeric:
            out[:, numeric] = sub.iloc[:, numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        for j, c in enumerate(cols):
            mapping = self.categories.get(c)
            if mapping is not None and j not in as_codes:
                out[:, j] = _category_codes(sub.iloc[:, j], mapping)
        return out

    def encode_values(self, values: Mapping[str, Any]) -> np.ndarray:
        """:meth:`encode` of one row given as column -> plain value (None or NaN missing;
        categories as their value): shape ``(1, len(columns))``, the same numbers. KeyError
        when ``values`` lacks a model column."""
        out = np.empty((1, len(self.columns)), dtype=np.float64)
        row = out[0]
        plain_at, plain, coded = self._value_plan
        try:
            # one conversion for the numeric columns (None -> NaN, as below)
            row[plain_at] = np.array([values[c] for c in plain], dtype=np.float64)
        except (TypeError, ValueError):  # a value NumPy does not convert (pd.NA)
            for j, c in zip(plain_at.tolist(), plain, strict=True):
                v = values[c]
                row[j] = np.nan if _missing(v) else float(v)
        for j, c, mapping in coded:
            v = values[c]
            if _missing(v):
                row[j] = np.nan
            elif not isinstance(v, int | float):
                row[j] = mapping.get(str(v), np.nan)
            else:
                row[j] = float(v)
        return out

    @cached_property
    def _value_plan(self) -> tuple[np.ndarray, list[str], list[tuple[int, str, Mapping[str, int]]]]:
        """(positions and names of the columns without categories, then (position, name,
        value -> code) of the categorical ones), for :meth:`encode_values`."""
        plain = [(j, c) for j, c in enumerate(self.columns) if c not in self.categories]
        coded = [
            (j, c, self.categories[c]) for j, c in enumerate(self.columns) if c in self.categories
        ]
        return np.array([j for j, _ in plain], dtype=np.int64), [c for _, c in plain], coded

    def _encode_small(self, frame: pd.DataFrame) -> np.ndarray:
        """:meth:`encode` of a frame of a few rows (the cold path's): one conversion of
        the whole frame to objects, then plain indexing. Selecting hundreds of columns of a
        frame costs about a millisecond per call however few its rows."""
        where = {c: i for i, c in enumerate(frame.columns.tolist())}
        absent = [c for c in self.columns if c not in where]
        if absent:
            raise KeyError(f"{absent[:5]} not in the frame's columns ({len(absent)} in all)")
        at = [where[c] for c in self.columns]
        values = frame.to_numpy(dtype=object)[:, at]
        dtypes = frame.dtypes.tolist()
        out = np.empty(values.shape, dtype=np.float64)
        coded = [
            j
            for j, c in enumerate(self.columns)
            if c in self.categories and not pd.api.types.is_numeric_dtype(dtypes[at[j]])
        ]
        numeric = [j for j in range(len(at)) if j not in set(coded)]
        try:
            out[:, numeric] = values[:, numeric].astype(np.float64)
        except (TypeError, ValueError):  # a missing value pandas gave as NA
            out[:, numeric] = [[_number(v) for v in row] for row in values[:, numeric]]
        for j in coded:
            mapping = self.categories[self.columns[j]]
            out[:, j] = [
                np.nan if _missing(v) else mapping.get(str(v), np.nan) for v in values[:, j]
            ]
        return out


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _number(value: object) -> float:
    return np.nan if _missing(value) else float(value)  # type: ignore[arg-type]


def _category_codes(column: pd.Series, mapping: Mapping[str, int]) -> np.ndarray:
    """The training codes of ``column``'s values (NaN: missing or unseen in training)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Map the few categories, not every row's value.
        lut = np.array(
            [mapping.get(str(v), np.nan) for v in column.cat.categories], dtype=np.float64
        )
        at = column.cat.codes.to_numpy()
        if not len(lut):
            return np.full(len(column), np.nan)
        return np.where(at >= 0, lut[np.clip(at, 0, len(lut) - 1)], np.nan)
    values = column.astype(object).tolist()
    return np.array(
        [mapping.get(str(v), np.nan) if v is not None else np.nan for v in values],
        dtype=np.float64,
    )


def model_input(estimator: Any) -> ModelInput:
    """The :class:`ModelInput` of a fitted ``LGBMClassifier`` or ``lightgbm.Booster``."""
    columns = tuple(model_columns(estimator))
    levels = fitted_categories(estimator)
    if levels:
        return ModelInput(
            columns,
            {c: {str(v): code for code, v in enumerate(names)} for c, names in levels.items()},
        )
    booster = getattr(estimator, "booster_", estimator)
    cat_index = booster.params.get("categorical_column") or []
    if isinstance(cat_index, int):
        cat_index = [cat_index]
    categorical = booster.pandas_categorical or []
    if len(cat_index) != len(categorical):
        raise ModelLoadError(
            f"model has {len(cat_index)} categorical columns but {len(categorical)} recorded "
            "category lists; expected a model trained on a DataFrame with categorical dtypes"
        )
    categories = {
        columns[int(i)]: {str(v): code for code, v in enumerate(values)}
        for i, values in zip(cat_index, categorical, strict=True)
    }
    return ModelInput(columns, categories)
