"""The response model the simulator draws from and the truth recomputes: the catalog's fit
tables (phase, role, topic, value per item) and the logit of a response."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Catalog:
    """The content catalog as arrays over items."""

    content_ids: list[str]
    phase_fit: np.ndarray  # items x phases: 1 fits, adjacent_phase_fit next to a fitting phase
    role_fit: np.ndarray  # items x roles: 1 fits
    topic: np.ndarray  # items: topic code
    value: np.ndarray  # items: business value


def build_catalog(
    content: pd.DataFrame, phases: list[str], roles: list[str], topics: list[str], adjacent: float
) -> Catalog:
    """The fit tables of the ``content`` frame (content_id, phases, roles, topic, value)."""
    n = len(content)
    exact = np.zeros((n, len(phases)))
    role_fit = np.zeros((n, len(roles)))
    for i, (item_phases, item_roles) in enumerate(
        zip(content["phases"], content["roles"], strict=True)
    ):
        # A loop over ~100 catalog items, not events.
        exact[i, [phases.index(p) for p in item_phases]] = 1.0
        role_fit[i, [roles.index(r) for r in item_roles]] = 1.0
    near = np.zeros_like(exact)
    near[:, 1:] = np.maximum(near[:, 1:], exact[:, :-1])
    near[:, :-1] = np.maximum(near[:, :-1], exact[:, 1:])
    phase_fit = np.where(exact == 1, 1.0, np.where(near == 1, adjacent, 0.0))
    topic = np.array([topics.index(str(t)) for t in content["topic"]], dtype=np.int64)
    value = (
        content["value"].to_numpy(dtype=float) if "value" in content else np.ones(n, dtype=float)
    )
    return Catalog(list(map(str, content["content_id"])), phase_fit, role_fit, topic, value)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def response_logit(
    params: dict[str, float],
    phase_fit: np.ndarray,
    role_fit: np.ndarray,
    interest: np.ndarray,
    fatigue: np.ndarray,
) -> np.ndarray:
    """The response model's logit; the simulator and true_response_probability share it."""
    return (
        params["response_base"]
        + params["response_phase_fit"] * phase_fit
        + params["response_role_fit"] * role_fit
        + params["response_topic"] * interest
        - params["response_fatigue"] * fatigue
    )
