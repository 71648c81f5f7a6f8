"""The content catalog as arrays: which phases and roles each item fits, codes of names
in the taxonomy's vocabularies, and which items are eligible for a decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.schema import fits_every
from features.taxonomy import Taxonomy
from models.next_content.errors import NextContentModelError


def membership(lists: pd.Series, names: list[str], what: str) -> np.ndarray:
    """items x names 0/1 matrix from a column of name lists (a loop over ~100 items); an
    item that lists none fits every name (``features.schema.fits_every``)."""
    every = fits_every(lists)
    out = np.zeros((len(lists), len(names)), dtype=np.float32)
    out[every] = 1.0
    index = {n: k for k, n in enumerate(names)}
    for i, values in enumerate(lists):
        if every[i]:
            continue
        for v in values:
            if v not in index:
                raise NextContentModelError(
                    f"table content column {what!r}: value {v!r} is not in the taxonomy ({names})"
                )
            out[i, index[v]] = 1.0
    return out


_DICT_CODES_ROWS = 64


def _present(value: Any) -> bool:
    """Whether ``value`` is a value (not None, NaN or pandas' NA), as ``notna`` counts."""
    return not bool(pd.isna(value)) if np.ndim(value) == 0 else True


def codes(values: pd.Series, names: list[str], column: str, *, strict: bool = True) -> np.ndarray:
    """Codes of ``values`` in ``names`` (-1 for NaN); unknown values raise when ``strict``."""
    if len(values) <= _DICT_CODES_ROWS:
        # One account's few rows: a dict beats building pandas indexes by milliseconds.
        index = {n: k for k, n in enumerate(names)}
        listed = list(values)
        present = np.array([_present(v) for v in listed], dtype=bool)
        out = np.array(
            [index.get(str(v), -1) if ok else -1 for v, ok in zip(listed, present, strict=True)],
            dtype=np.int64,
        )
    else:
        text = pd.Series(values).astype(object)
        present = text.notna().to_numpy()
        out = np.full(len(text), -1, dtype=np.int64)
        out[present] = pd.Index(names).get_indexer(pd.Index(text[present].astype(str)))
    unknown = (out < 0) & present
    if strict and unknown.any():
        bad = pd.Series(list(values), dtype=object)[unknown].unique()[:5].tolist()
        raise NextContentModelError(
            f"column {column!r}: values {bad} are not in the taxonomy ({names})"
        )
    return out


def phase_fit_matrix(content: pd.DataFrame, taxonomy: Taxonomy) -> np.ndarray:
    """items x phases: 1.0 where the item fits the phase (content rows in order)."""
    return membership(content["phases"], taxonomy.phases, "phases")


def eligible_items(
    content: pd.DataFrame, phase_codes: np.ndarray, taxonomy: Taxonomy
) -> np.ndarray:
    """decisions x items bool: the items fitting each decision's CRM phase (code into
    ``taxonomy.phases``; items listing no phase fit all), the rule the logging policy
    follows; a phase no item fits (or an unknown phase, code -1) makes every item
    eligible."""
    fit = phase_fit_matrix(content, taxonomy) == 1.0  # items x phases
    phase = np.asarray(phase_codes, dtype=np.int64)
    out = fit[:, np.maximum(phase, 0)].T.copy()
    none = (phase < 0) | ~out.any(axis=1)
    out[none] = True
    return out
