"""Scoring every eligible (decision, item) pair and the top-1 pick per decision."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from features.taxonomy import Taxonomy
from models.contract import ARM_VALUES_PARAM, CONTROL_PARAM
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

    def rows(d: np.ndarray, i: np.ndarray) -> pd.DataFrame:
        first, last = int(d[0]), int(d[-1]) + 1
        x = candidate_features(
            account_features.iloc[first:last],
            roles.iloc[first:last],
            content,
            taxonomy,
            item_index=i,
            decision_index=d - first,
        )
        return x[columns]

    chunks = [
        (dec[lo : lo + chunk_rows], item[lo : lo + chunk_rows])
        for lo in range(0, len(dec), chunk_rows)
    ]
    if len(chunks) == 1:
        out[chunks[0]] = predict_proba(estimator, rows(*chunks[0]))
        return out
    # LightGBM predicts one chunk on its own threads, without the GIL, while this thread
    # builds the next chunk's rows (NumPy and pandas, one core): a training run's policy
    # evaluation scores millions of candidate rows. At most two chunks are held at once.
    with ThreadPoolExecutor(1) as pool:
        pending: tuple[tuple[np.ndarray, np.ndarray], Future[np.ndarray]] | None = None
        for chunk in chunks:
            x = rows(*chunk)
            if pending is not None:
                out[pending[0]] = pending[1].result()
            pending = (chunk, pool.submit(predict_proba, estimator, x))
            del x
        if pending is not None:
            out[pending[0]] = pending[1].result()
    return out


def top1(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per decision (row), the column of the highest score among eligible items (first on
    ties); rows without an eligible item give the overall best."""
    masked = np.where(eligible & ~np.isnan(scores), scores, -np.inf)
    pick = masked.argmax(axis=1)
    none = ~np.isfinite(masked).any(axis=1)
    pick[none] = np.nan_to_num(scores[none], nan=-np.inf).argmax(axis=1)
    return pick


def uplift_over_control(
    p: np.ndarray, content_ids: Sequence[str] | np.ndarray, run_params: Mapping[str, str]
) -> np.ndarray:
    """``p`` (decisions x items P(positive), items in ``content_ids`` order) as the ranking
    serving uses. Unchanged for a model trained without a control (no
    ``models.contract.CONTROL_PARAM`` in its ``run_params``). Otherwise each item's uplift,
    P x value(item) minus the same for the control (values from ``ARM_VALUES_PARAM``; 1 for
    a response reward), in units of the largest item value so it stays in [0, 1]; NaN (not
    a candidate) for the control itself and where doing nothing is predicted at least as
    good. A catalog without the control item leaves ``p`` unchanged."""
    control_id = run_params.get(CONTROL_PARAM)
    ids = [str(c) for c in content_ids]
    if not control_id or control_id not in ids:
        return p
    raw = json.loads(run_params.get(ARM_VALUES_PARAM) or "{}")
    values = np.array([float(raw.get(c, 1.0)) for c in ids], dtype=np.float64)
    c = ids.index(control_id)
    gain = p * values[None, :] - (p[:, [c]] * values[c])
    scale = float(np.delete(values, c).max()) if len(ids) > 1 else 1.0
    out = gain / (scale if scale > 0 else 1.0)
    out[:, c] = np.nan
    out[~(out > 0)] = np.nan
    return out
