"""The response model the simulator draws from and the truth recomputes: the catalog's fit
tables (phase, role, topic, value per item) and the logit of a response, with its
interactions (phase x role, phase x topic, recency-weighted fatigue) and its offsets by
channel and content type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.params import RESPONSE_COEFFICIENTS, ROLE_WEIGHTS, SimulationParams
from features.timestamps import NS_PER_DAY


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


@dataclass(frozen=True)
class ResponseModel:
    """The response model the simulator draws from and the truth recomputes (the logit
    of SimulationParams): scalar coefficients (RESPONSE_COEFFICIENTS) and the lookup
    arrays of its interaction and offset terms."""

    coefficients: dict[str, float]
    topic_phase: np.ndarray  # phases: weight of topic interest in each true phase
    role_activity: np.ndarray  # phases x roles: A, how active a role is in a phase
    channel_offset: np.ndarray  # channels: logit offset of the exposure's channel
    item_offset: np.ndarray  # items: logit offset of the item's content type

    @classmethod
    def build(
        cls,
        rows: Mapping[str, float],
        *,
        roles: list[str],
        channels: list[str],
        content_types: list[str],
        n_phases: int,
    ) -> ResponseModel:
        """The model of name/value ``rows`` as :meth:`rows` writes them (missing
        per-channel or per-content-type offsets and topic weights: 0, 0 and 1)."""
        coef = {k: float(rows[k]) if k in rows else 0.0 for k in RESPONSE_COEFFICIENTS}
        weights = np.stack([role_vector(ROLE_WEIGHTS[ph], roles) for ph in range(n_phases)])
        return cls(
            coefficients=coef,
            topic_phase=np.array(
                [float(rows.get(f"response_topic_phase.{ph}", 1.0)) for ph in range(n_phases)]
            ),
            role_activity=weights / weights.mean(axis=1, keepdims=True),
            channel_offset=np.array(
                [float(rows.get(f"response_channel.{c}", 0.0)) for c in channels]
            ),
            item_offset=np.array(
                [float(rows.get(f"response_content_type.{t}", 0.0)) for t in content_types]
            ),
        )

    @staticmethod
    def rows(p: SimulationParams) -> dict[str, float]:
        """The name/value rows of the response model of ``p`` (the truth's params)."""
        out = {k: float(getattr(p, k)) for k in RESPONSE_COEFFICIENTS}
        out.update(
            {f"response_topic_phase.{i}": float(w) for i, w in enumerate(p.response_topic_phase)}
        )
        out.update({f"response_channel.{c}": float(v) for c, v in p.response_channel})
        out.update({f"response_content_type.{t}": float(v) for t, v in p.response_content_type})
        return out

    def logit(
        self,
        cat: Catalog,
        *,
        item: np.ndarray,
        phase: np.ndarray,
        role: np.ndarray,
        interest: np.ndarray,
        fatigue: np.ndarray,
        channel: np.ndarray,
    ) -> np.ndarray:
        """The logit of a response to ``item`` shown through ``channel`` to a contact of
        ``role`` of an account in true ``phase`` with ``interest`` in the item's topic and
        ``fatigue`` (recency-weighted recent exposures); phase or role -1 (unknown): no
        fit and no interaction."""
        c = self.coefficients
        ph, ro = np.maximum(phase, 0), np.maximum(role, 0)
        known_ph, known_ro = phase >= 0, (role >= 0) & (phase >= 0)
        phase_fit = np.where(known_ph, cat.phase_fit[item, ph], 0.0)
        role_fit = np.where(role >= 0, cat.role_fit[item, ro], 0.0)
        activity = np.where(known_ro, self.role_activity[ph, ro], 1.0)
        role_w = 1.0 - c["response_role_phase"] + c["response_role_phase"] * activity
        topic_w = np.where(known_ph, self.topic_phase[ph], 1.0)
        return (
            c["response_base"]
            + self.channel_offset[channel]
            + self.item_offset[item]
            + c["response_phase_fit"] * phase_fit
            + c["response_role_fit"] * role_fit * role_w
            + c["response_topic"] * topic_w * interest
            - c["response_fatigue"] * fatigue
        )


def fatigue_weight(age_ns: np.ndarray, halflife_days: float) -> np.ndarray:
    """The weight of an exposure ``age_ns`` old in the fatigue: 1 without a half-life,
    else halving every ``halflife_days``."""
    if halflife_days <= 0:
        return np.ones(np.shape(age_ns))
    return np.power(0.5, np.asarray(age_ns, dtype=float) / (halflife_days * NS_PER_DAY))


def role_vector(weights: Mapping[str, float], roles: list[str]) -> np.ndarray:
    """The weight of each role in ``roles`` (roles not in ``weights``: 1)."""
    return np.array([float(weights.get(r, 1.0)) for r in roles])
