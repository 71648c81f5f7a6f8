"""Scoring every eligible (decision, item) pair and the top-1 pick per decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.taxonomy import Taxonomy
from models.next_content.candidates import candidate_features
from models.next_content.errors import NextContentModelError
from models.next_content.model import predict_proba


def score_candidates(
    estimator: Any,
    account_features: pd.DataFrame,
    contact_role: pd.Series | np.ndarray | Sequence[str | None],
    content: pd.DataFrame,
    taxonomy: Taxonomy,
    columns: list[str],
    *,
    eligible: np.ndarray | None = None,
    chunk_rows: int = 200_000,
) -> np.ndarray:
    """decisions x items matrix of P(response) (:func:`candidate_features` then
    :func:`predict_proba` on ``columns``) for the ``eligible`` (decisions x items bool)
    pairs, NaN elsewhere (default: every item), computed in chunks of about ``chunk_rows``
    candidate rows to bound memory."""
    n_dec, n_items = len(account_features), len(content)
    mask = np.ones((n_dec, n_items), dtype=bool) if eligible is None else np.asarray(eligible)
    if mask.shape != (n_dec, n_items):
        raise NextContentModelError(
            f"eligible has shape {mask.shape}; expected (decisions, items) = {(n_dec, n_items)}"
        )
    out = np.full((n_dec, n_items), np.nan, dtype=np.float64)
    dec, item = np.nonzero(mask)
    roles = pd.Series(contact_role).reset_index(drop=True)
    for lo in range(0, len(dec), chunk_rows):
        d, i = dec[lo : lo + chunk_rows], item[lo : lo + chunk_rows]
        first, last = int(d[0]), int(d[-1]) + 1
        x = candidate_features(
            account_features.iloc[first:last],
            roles.iloc[first:last],
            content,
            taxonomy,
            item_index=i,
            decision_index=d - first,
        )
        out[d, i] = predict_proba(estimator, x[columns])
    return out


def top1(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per decision (row), the column of the highest score among eligible items (first on
    ties); rows without an eligible item give the overall best."""
    masked = np.where(eligible & ~np.isnan(scores), scores, -np.inf)
    pick = masked.argmax(axis=1)
    none = ~np.isfinite(masked).any(axis=1)
    pick[none] = np.nan_to_num(scores[none], nan=-np.inf).argmax(axis=1)
    return pick
