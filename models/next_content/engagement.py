"""The account's engagement with what a candidate item is: its content type, the phases it
fits, the contact's role and its topic (counts, shares, recency, interest), one value per
candidate row, read from the account's columns (``candidates.candidate_features``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from models.next_content.columns import PHASE_WINDOWS, TOPIC_WINDOWS

if TYPE_CHECKING:
    from models.next_content.candidates import Gathered

# The candidate columns derived from the account's per-topic counts.
_TOPIC_CANDIDATES = [
    *(f"topic_{what}_{w}" for w in TOPIC_WINDOWS for what in ("touchpoints", "share")),
    "topic_rank_ever",
    "topic_interest_ever",
]


def value_at(matrix: np.ndarray, cols: np.ndarray, *, missing: float = 0.0) -> np.ndarray:
    """Returns ``matrix[k, cols[k]]`` per row k, ``missing`` where the column is out of
    range (e.g. -1: the item has no content type or topic)."""
    ok = (cols >= 0) & (cols < matrix.shape[1])
    picked = matrix[np.arange(len(cols)), np.clip(cols, 0, max(matrix.shape[1] - 1, 0))]
    return np.where(ok, picked, missing)


def share_of(part: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Returns part / total as float32, NaN where the total is 0."""
    return np.where(total > 0, part / np.maximum(total, 1), np.nan).astype(np.float32)


def type_engagement(
    acc: Gathered, dec: np.ndarray, type_code: np.ndarray, types: list[str]
) -> dict[str, np.ndarray]:
    """Returns the account's touchpoints with the item's content type and days since."""
    out: dict[str, np.ndarray] = {}
    # An item without a content type has no type engagement: NaN, not a count of another.
    for w in ("90d", "365d"):
        m = acc.take([f"n_content_type_{t}_{w}" for t in types], dec)
        out[f"type_touchpoints_{w}"] = value_at(m, type_code, missing=np.nan).astype(np.float32)
    m = acc.take([f"days_since_content_type_{t}" for t in types], dec)
    out["days_since_type"] = value_at(m, type_code, missing=np.nan).astype(np.float32)
    return out


def phase_engagement(
    acc: Gathered, dec: np.ndarray, phase_fit: np.ndarray, phases: list[str]
) -> dict[str, np.ndarray]:
    """Returns the account's content touchpoints on the item's phases, their share, and
    the days since the last of them (NaN: none, or the item fits no phase)."""
    out: dict[str, np.ndarray] = {}
    for w in PHASE_WINDOWS:
        m = acc.take([f"n_content_phase_{p}_{w}" for p in phases], dec)
        touched = (m * phase_fit).sum(axis=1)
        if w == "30d":
            out["phase_touchpoints_30d"] = touched.astype(np.float32)
        out[f"phase_share_{w}"] = share_of(touched, m.sum(axis=1))
    days = acc.take([f"days_since_content_phase_{p}" for p in phases], dec)
    # The account's most recent touch on any phase the item fits: where the account's
    # behaviour has been lately (its CRM phase lags or is missing).
    nearest = np.where((phase_fit > 0) & ~np.isnan(days), days, np.inf).min(axis=1, initial=np.inf)
    out["days_since_phase"] = np.where(np.isfinite(nearest), nearest, np.nan).astype(np.float32)
    return out


def role_engagement(
    acc: Gathered, dec: np.ndarray, role: np.ndarray, roles: list[str]
) -> dict[str, np.ndarray]:
    """Returns the account's touchpoints by contacts of the contact's role (NaN unknown)."""
    m = acc.take([f"n_role_{r}_90d" for r in roles], dec)
    return {
        "role_touchpoints_90d": np.where(role >= 0, value_at(m, role), np.nan).astype(np.float32)
    }


def topic_interest(
    acc: Gathered, dec: np.ndarray, topic_code: np.ndarray, topics: list[str]
) -> dict[str, np.ndarray]:
    """Returns the account's content touchpoints on the item's topic, their share and the
    topic's rank; NaN when the account features lack the per-topic counts or the item has
    no topic."""
    n = len(topic_code)
    if not acc.has([f"n_topic_{t}_{w}" for w in TOPIC_WINDOWS for t in topics]):
        return {c: np.full(n, np.nan, dtype=np.float32) for c in _TOPIC_CANDIDATES}
    out: dict[str, np.ndarray] = {}
    for w in TOPIC_WINDOWS:
        m = acc.take([f"n_topic_{t}_{w}" for t in topics], dec)
        mine = value_at(m, topic_code, missing=np.nan)
        out[f"topic_touchpoints_{w}"] = mine.astype(np.float32)
        out[f"topic_share_{w}"] = np.where(
            np.isnan(mine), np.nan, share_of(np.nan_to_num(mine), m.sum(axis=1))
        ).astype(np.float32)
        if w == "ever":
            # Topics engaged more than this one (ties share the better rank).
            rank = (m > mine[:, None]).sum(axis=1)
            out["topic_rank_ever"] = np.where(np.isnan(mine), np.nan, rank).astype(np.float32)
            out["topic_interest_ever"] = _log_ratio(mine, m)
    return out


def _log_ratio(mine: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Returns log(1 + mine) minus the mean over columns of log(1 + counts): how much more
    the account engages with this topic than with its average topic. One number a tree can
    split on, where the interest lies in the ratio of a count and a total (share and total
    alone leave an account with 2 of 3 touches like one with 200 of 300); the +1 shrinks
    the few touches of a quiet account towards no preference. NaN where ``mine`` is NaN."""
    ratio = np.log1p(mine) - np.log1p(counts).mean(axis=1)
    return ratio.astype(np.float32)
