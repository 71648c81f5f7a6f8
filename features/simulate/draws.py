"""Vectorised random draws the weekly steps share: row-wise categorical picks, the contact
of an event, and the duration of views and attendances."""

from __future__ import annotations

import numpy as np

from features.simulate.response import Catalog
from features.simulate.world import BuyingCenters


def pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: the column index per row of ``weights`` (n x k, >= 0) for
    uniforms ``u``; rows whose weights are all zero give -1."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    idx = (cum <= (u * total)[:, None]).sum(axis=1)
    idx = np.minimum(idx, weights.shape[1] - 1)
    return np.where(total > 0, idx, -1)


def pick_cdf(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw from rows of cumulative distributions (last column 1)."""
    return np.minimum((cdf_rows <= u[:, None]).sum(axis=1), cdf_rows.shape[1] - 1)


def choose_contacts(
    acc: np.ndarray,
    role_weights: np.ndarray,
    slot_contact: np.ndarray,
    centers: BuyingCenters,
    rng: np.random.Generator,
    *,
    item: np.ndarray | None = None,
    cat: Catalog | None = None,
) -> np.ndarray:
    """A contact (global index, -1 if the buying center is empty) per event of accounts
    ``acc``, drawn among the account's current contacts (``slot_contact``, accounts x slots)
    with weight by role: ``role_weights`` is one vector over roles or one row per event;
    content events favour fitting roles."""
    roles = centers.slot_role[acc]  # n x slots
    if role_weights.ndim == 1:
        w = role_weights[roles]
    else:
        w = np.take_along_axis(role_weights, roles, axis=1)
    if item is not None and cat is not None:
        has = item >= 0
        fit = cat.role_fit[np.where(has, item, 0)[:, None], roles]
        w = w * np.where(has[:, None], 1.0 + 2.0 * fit, 1.0)
    current = slot_contact[acc]
    w = np.where((current >= 0) & centers.slot_exists[acc], w, 0.0)
    slot = pick(w, rng.random(len(acc)))
    return np.where(slot >= 0, current[np.arange(len(acc)), np.maximum(slot, 0)], -1)


def durations(
    etype: np.ndarray, et_view: int, et_attend: int, rng: np.random.Generator
) -> np.ndarray:
    """Minutes for views and attendances, NaN otherwise."""
    out = np.full(len(etype), np.nan)
    views = etype == et_view
    attends = etype == et_attend
    out[views] = np.round(rng.lognormal(np.log(3.0), 0.8, int(views.sum())), 1)
    out[attends] = np.round(rng.lognormal(np.log(40.0), 0.4, int(attends.sum())), 1)
    return out
