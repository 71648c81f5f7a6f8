"""The answer for an account nothing is known about: the phase prior and popular content.

An account the data do not hold yet has no history, so no per-account prediction applies
to it. It gets the phase probabilities of an account with no history (serving asks the
phase model about an account created just now with nothing recorded: the early phases,
not the population's mix, which peaks after the purchase) and the catalog items that fit
the most likely phase, most popular first (popularity: the
response touchpoints on each item, :func:`content_popularity`). Pure computation on arrays:
serving wraps the result into its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import RESPONSE_EVENT_TYPES
from models.arbitration import Action, PreparedCatalog

POLICY = "cold-start-popular"


@dataclass(frozen=True)
class ColdStart:
    """A cold-start ranking: ``phase_proba`` the normalised prior (catalog phase order),
    ``phase`` the index of the most likely phase, ``actions`` in rank order (no contact: the
    account has none yet; ``p_response`` is the item's share of popularity)."""

    phase_proba: np.ndarray
    phase: int
    actions: tuple[Action, ...]


def content_popularity(touchpoints: pd.DataFrame) -> dict[str, float]:
    """Returns content_id -> number of response touchpoints (click, download, ...) on it:
    what cold-start answers rank the catalog by."""
    if touchpoints.empty:
        return {}
    is_response = touchpoints["event_type"].astype(object).isin(RESPONSE_EVENT_TYPES)
    ids = touchpoints.loc[is_response & touchpoints["content_id"].notna(), "content_id"]
    counts = ids.astype(str).value_counts()
    return {str(k): float(v) for k, v in counts.items()}


def phase_prior(prior: np.ndarray, n_phases: int) -> np.ndarray:
    """Returns ``prior`` normalised to sum 1, or the uniform distribution when it does not
    have one entry per phase or no mass (a model trained on fewer phases)."""
    out = np.asarray(prior, dtype=np.float64)
    if len(out) != n_phases or not out.sum() > 0:
        out = np.full(n_phases, 1.0 / n_phases)
    return out / out.sum()


def rank_cold_start(
    prior: np.ndarray,
    catalog: PreparedCatalog,
    popularity: Mapping[str, float],
    k: int,
    *,
    channel: str | None = None,
) -> ColdStart:
    """Returns the top ``k`` catalog items fitting the most likely phase of ``prior`` (and
    ``channel`` when given): most popular first, then most valuable, then catalog order."""
    proba = phase_prior(prior, len(catalog.phase_names))
    phase = int(np.argmax(proba))
    fits = catalog.phase_fit[:, phase].copy()
    if channel is not None:
        fits &= catalog.channel == channel
    items = np.flatnonzero(fits)
    pop = np.array([popularity.get(str(c), 0.0) for c in catalog.content_ids[items]])
    order = np.lexsort((np.arange(len(items)), -catalog.value[items], -pop))[:k]
    total = pop.sum()
    share = pop / total if total > 0 else np.full(len(items), 1.0 / max(len(items), 1))
    actions = tuple(
        _action(catalog, int(items[j]), float(share[j]), rank + 1)
        for rank, j in enumerate(order.tolist())
    )
    return ColdStart(proba, phase, actions)


def _action(catalog: PreparedCatalog, item: int, share: float, rank: int) -> Action:
    """Returns catalog row ``item`` as an action for no particular contact."""
    value = float(catalog.value[item])
    return Action(
        content_id=str(catalog.content_ids[item]),
        contact_id="",
        role="",
        title=str(catalog.title[item]),
        content_type=str(catalog.content_type[item]),
        channel=str(catalog.channel[item]),
        expected_value=share * value,
        p_response=share,
        value=value,
        fit=1.0,
        phase_fit=1.0,
        role_fit=1.0,
        lever=1.0,
        propensity=1.0,
        rank=rank,
        explored=False,
    )
