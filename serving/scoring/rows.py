"""Candidate rows as the next-content model reads them: its float matrix and, per row, the
values reasons quote.

The cold path from a feature state and the warm path's late explanations build one
account's rows from its account values (column -> plain value) with
:func:`models.next_content.candidate_arrays` and :class:`CandidateEncoder`: no frames,
numbers equal to ``ModelInput.encode`` of ``candidate_features``' frame (the codes of the
categorical columns are mapped through lookup tables built once per model set). Scoring
many accounts at once keeps the frames (:class:`FrameRows`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.taxonomy import Taxonomy
from models import next_content as nc
from serving.model_input import ModelInput
from serving.scoring.answer import ScoringError


class RowSource(Protocol):
    """Candidate rows whose values reasons read, one mapping per row."""

    def values(self, row: int) -> Mapping[str, Any]: ...


class RowValues(Mapping[str, Any]):
    """Row ``row`` of ``frame`` as column -> value, each value read when asked for (reasons
    read a few of hundreds of columns; converting the whole row costs milliseconds). NumPy
    scalars come out as Python ones."""

    def __init__(self, frame: pd.DataFrame, row: int) -> None:
        self._frame = frame
        self._row = row

    def __getitem__(self, column: str) -> Any:
        if column not in self._frame.columns:
            raise KeyError(column)
        value = self._frame[column].iat[self._row]
        return value.item() if isinstance(value, np.generic) else value

    def __iter__(self) -> Iterator[str]:
        return iter(str(c) for c in self._frame.columns)

    def __len__(self) -> int:
        return len(self._frame.columns)


class FrameRows:
    """Candidate rows held as a frame; row ``r`` is frame row ``offset + r``."""

    def __init__(self, frame: pd.DataFrame, offset: int = 0) -> None:
        self._frame = frame
        self._offset = offset

    def values(self, row: int) -> Mapping[str, Any]:
        return RowValues(self._frame, self._offset + row)


class _ArrayRow(Mapping[str, Any]):
    """One candidate row of :class:`ArrayRows`: the account's values, then the candidate
    columns (float32 numbers as Python floats, codes as their level, None missing), as
    :class:`RowValues` gives them for ``candidate_features``' frame."""

    def __init__(self, rows: ArrayRows, row: int) -> None:
        self._rows = rows
        self._row = row

    def __getitem__(self, column: str) -> Any:
        rows = self._rows
        candidate = rows.candidates.get(column)
        if candidate is None:
            return rows.account[column]
        levels = rows.levels.get(column)
        if levels is None:
            return float(candidate[self._row])
        code = int(candidate[self._row])
        return None if code < 0 else levels[code]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._rows.account, *self._rows.candidates])

    def __len__(self) -> int:
        return len(self._rows.account) + len(self._rows.candidates)


class ArrayRows:
    """One account's candidate rows as arrays (``models.next_content.candidate_arrays``)."""

    def __init__(
        self,
        account: Mapping[str, Any],
        candidates: dict[str, np.ndarray],
        levels: Mapping[str, list[str]],
    ) -> None:
        self.account = account
        self.candidates = candidates
        self.levels = levels

    def values(self, row: int) -> Mapping[str, Any]:
        return _ArrayRow(self, row)


class CandidateEncoder:
    """One account's candidate rows as the next-content model ``spec``'s matrix, built
    once per model set: the positions of the account and candidate columns in the model's
    order and, for each categorical candidate column, its codes' model codes."""

    def __init__(self, spec: ModelInput, catalog: nc.CatalogArrays, taxonomy: Taxonomy) -> None:
        self.catalog = catalog
        self.taxonomy = taxonomy
        columns = list(spec.columns)
        self.n_columns = len(columns)
        self.candidate_at = [(j, c) for j, c in enumerate(columns) if c in nc.CANDIDATE_DEFINITIONS]
        account = [c for c in columns if c not in nc.CANDIDATE_DEFINITIONS]
        self.account_at = np.array(
            [j for j, c in enumerate(columns) if c not in nc.CANDIDATE_DEFINITIONS], dtype=np.int64
        )
        self.account = ModelInput(
            tuple(account), {c: m for c, m in spec.categories.items() if c in set(account)}
        )
        self.levels: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        for column, dtype in nc.categorical_dtypes(catalog).items():
            levels = [str(v) for v in dtype.categories]
            self.levels[column] = levels
            if column not in spec.columns:
                continue
            mapping = spec.categories.get(column)
            if mapping is None:
                raise ScoringError(
                    f"the next-content model takes {column!r} as a number; expected a "
                    "categorical column (a model trained by candidate_features)"
                )
            self.codes[column] = np.array(
                [mapping.get(v, np.nan) for v in levels] or [np.nan], dtype=np.float64
            )

    def encode(
        self,
        account: Mapping[str, Any],
        roles: Sequence[str | None],
        items: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ArrayRows]:
        """The matrix and values of the account's candidate rows: every role x item
        (``items`` None, role-major) or role k x item ``items[k]``. ``account`` maps the
        model's account columns to plain values."""
        candidates = nc.candidate_arrays(
            account, roles, self.taxonomy, self.catalog, item_index=items
        )
        n = len(candidates["content_item"])
        x = np.empty((n, self.n_columns), dtype=np.float64)
        x[:, self.account_at] = self.account.encode_values(account)
        for j, column in self.candidate_at:
            values = candidates[column]
            lut = self.codes.get(column)
            if lut is None:
                x[:, j] = values
            else:
                x[:, j] = np.where(values >= 0, lut[np.clip(values, 0, len(lut) - 1)], np.nan)
        return x, ArrayRows(account, candidates, self.levels)
