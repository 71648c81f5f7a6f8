"""Lookup tables the weekly steps index by phase, item or role: touchpoint templates per
phase, the items fitting each (phase, topic), event types per item, the logging policy,
per-phase hazards and rates, and the taxonomy codes of the channels and event types the
simulator emits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.params import (
    CONTENT_EVENTS,
    CONTENT_SHARE,
    CONTRACT_ROLES,
    CUSTOMER_PHASES,
    EARLY_PHASES,
    N_PHASES,
    NO_STAGE,
    NOISE_CHANNELS,
    RESPONSE_EVENTS,
    ROLE_WEIGHTS,
    TEMPLATES,
    TICKET_ROLES,
    TRIGGER,
    USAGE_ROLES,
    SimulationError,
    SimulationParams,
)
from features.simulate.response import Catalog, role_vector
from features.taxonomy import Taxonomy


class _Names:
    """Index lookups of taxonomy names; missing names raise SimulationError."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.channels = taxonomy.channel_names
        self.event_types = taxonomy.event_type_names

    def channel(self, name: str) -> int:
        """The code of channel ``name``."""
        if name not in self.channels:
            raise SimulationError(f"taxonomy has no channel {name!r}; the simulator needs it")
        return self.channels.index(name)

    def etype(self, name: str) -> int:
        """The code of event type ``name``."""
        if name not in self.event_types:
            raise SimulationError(f"taxonomy has no event type {name!r}; the simulator needs it")
        return self.event_types.index(name)


@dataclass(frozen=True)
class Codes:
    """Taxonomy codes of the channels and event types the steps emit by name."""

    ch_email: int
    ch_product: int
    ch_service: int
    ch_sales: int
    et_view: int
    et_attend: int
    et_usage: int
    et_ticket: int
    et_purchase: int
    et_renewal: int
    et_churn: int


@dataclass(frozen=True)
class Lookups:
    """The tables the weekly steps index into."""

    codes: Codes
    role_w_phase: np.ndarray  # phases x roles: who acts in each phase
    usage_roles: np.ndarray  # roles: who uses the product
    ticket_roles: np.ndarray  # roles: who files support tickets
    contract_roles: np.ndarray  # roles: who signs
    # Touchpoint templates, phases x (1 + templates); column 0 is "content touchpoint".
    tmpl_channel: np.ndarray
    tmpl_etype: np.ndarray
    tmpl_anon: np.ndarray  # probability that no contact is known
    anon_channel: np.ndarray  # channels: least probability that no contact is known
    tmpl_cdf: np.ndarray
    item_table: np.ndarray  # phases x topics x slots: items fitting (phase, topic)
    item_count: np.ndarray  # phases x topics: used slots of item_table
    item_evt_cdf: np.ndarray  # items x event types: organic content touchpoints
    item_resp_cdf: np.ndarray  # items x event types: responses to exposures
    item_channel: np.ndarray  # items: the item's usual channel
    noise_channels: np.ndarray
    is_training: np.ndarray  # items: training content (counts towards onboarding)
    policy: np.ndarray  # (CRM phases + no stage) x items: the logging policy's propensities
    policy_cdf: np.ndarray
    advance: np.ndarray  # phases: weekly advance hazard
    loss: np.ndarray  # phases: weekly loss hazard
    touch_rate: np.ndarray  # phases: organic touchpoints per week
    exposure_rate: np.ndarray  # phases + no stage: probability of a decision point per week


def logging_policy(catalog: Catalog, mix: float) -> np.ndarray:
    """Propensity of each item per CRM phase, the last row for no stage ((phases + 1) x
    items): softmax of log value over the items fitting that phase (no stage: fitting an
    early phase; all items if none fit), mixed with uniform so every eligible item has
    propensity >= 0.01."""
    eligible = (catalog.phase_fit == 1.0).T  # phases x items
    # Without a CRM stage the sender nurtures: items fitting any early phase.
    eligible = np.vstack([eligible, eligible[list(EARLY_PHASES)].any(axis=0)])
    none = ~eligible.any(axis=1)
    eligible[none] = True
    n_eligible = eligible.sum(axis=1, keepdims=True)
    eps = np.clip(np.maximum(mix, 0.01 * n_eligible), 0.0, 1.0)
    score = np.where(eligible, np.log(catalog.value)[None, :], -np.inf)
    soft = np.exp(score - score.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    pi = (1 - eps) * soft + eps * eligible / n_eligible
    return np.where(eligible, pi, 0.0)


def build_lookups(
    tax: Taxonomy, cat: Catalog, content_frame: pd.DataFrame, p: SimulationParams
) -> Lookups:
    """Returns the lookup tables for this taxonomy, catalog and parameters; raises
    SimulationError if the taxonomy lacks a channel or event type the simulator emits."""
    names = _Names(tax)
    roles = tax.role_names
    tmpl_channel, tmpl_etype, tmpl_anon, tmpl_cdf = _templates(names)
    item_table, item_count = _items_by_phase_topic(cat, len(tax.topic_names))
    content_types = [str(c) for c in content_frame["content_type"]]
    item_evt_cdf, item_resp_cdf = _item_event_cdfs(content_types, names)
    policy = logging_policy(cat, p.policy_uniform_mix)
    policy_cdf = np.cumsum(policy, axis=1)
    policy_cdf[:, -1] = 1.0
    exposure_rate = np.full(N_PHASES + 1, p.exposure_rate[1])
    exposure_rate[[TRIGGER, NO_STAGE]] = p.exposure_rate[0]
    exposure_rate[list(CUSTOMER_PHASES)] = p.exposure_rate[2]
    return Lookups(
        codes=_codes(names),
        role_w_phase=np.stack([role_vector(w, roles) for w in ROLE_WEIGHTS]),
        usage_roles=role_vector(USAGE_ROLES, roles) + 0.05,
        ticket_roles=role_vector(TICKET_ROLES, roles) + 0.05,
        contract_roles=role_vector(CONTRACT_ROLES, roles) + 0.05,
        tmpl_channel=tmpl_channel,
        tmpl_etype=tmpl_etype,
        tmpl_anon=tmpl_anon,
        tmpl_cdf=tmpl_cdf,
        anon_channel=_per_channel(p.anonymous_by_channel, names),
        item_table=item_table,
        item_count=item_count,
        item_evt_cdf=item_evt_cdf,
        item_resp_cdf=item_resp_cdf,
        item_channel=np.array([names.channel(str(c)) for c in content_frame["channel"]]),
        noise_channels=np.array([names.channel(c) for c in NOISE_CHANNELS]),
        is_training=np.array([ct == "training" for ct in content_types]),
        policy=policy,
        policy_cdf=policy_cdf,
        advance=np.asarray(p.advance_hazard, dtype=float),
        loss=np.asarray(p.loss_hazard, dtype=float),
        touch_rate=np.asarray(p.touch_rate, dtype=float),
        exposure_rate=exposure_rate,
    )


def _per_channel(pairs: tuple[tuple[str, float], ...], names: _Names) -> np.ndarray:
    """A value per taxonomy channel from (channel, value) pairs (others: 0); raises
    SimulationError for a channel the taxonomy lacks."""
    out = np.zeros(len(names.channels))
    for channel, value in pairs:
        out[names.channel(channel)] = value
    return out


def _codes(names: _Names) -> Codes:
    return Codes(
        ch_email=names.channel("email"),
        ch_product=names.channel("product"),
        ch_service=names.channel("customer_service"),
        ch_sales=names.channel("sales_call"),
        et_view=names.etype("view"),
        et_attend=names.etype("attend"),
        et_usage=names.etype("usage"),
        et_ticket=names.etype("support_ticket"),
        et_purchase=names.etype("purchase"),
        et_renewal=names.etype("renewal"),
        et_churn=names.etype("churn"),
    )


def _templates(names: _Names) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Channel, event type, anonymous share and cumulative weight per (phase, template);
    column 0 is "content touchpoint", the rest are the phase's templates."""
    n_tmpl = max(len(t) for t in TEMPLATES) + 1
    tmpl_channel = np.zeros((N_PHASES, n_tmpl), dtype=np.int64)
    tmpl_etype = np.zeros((N_PHASES, n_tmpl), dtype=np.int64)
    tmpl_anon = np.zeros((N_PHASES, n_tmpl))
    tmpl_w = np.zeros((N_PHASES, n_tmpl))
    for ph, templates in enumerate(TEMPLATES):
        tmpl_w[ph, 0] = CONTENT_SHARE[ph]
        total = sum(t[2] for t in templates)
        for j, (ch, et, w, anon) in enumerate(templates, start=1):
            tmpl_channel[ph, j] = names.channel(ch)
            tmpl_etype[ph, j] = names.etype(et)
            tmpl_anon[ph, j] = anon
            tmpl_w[ph, j] = (1 - CONTENT_SHARE[ph]) * w / total
    tmpl_cdf = np.cumsum(tmpl_w, axis=1)
    tmpl_cdf[:, -1] = 1.0
    return tmpl_channel, tmpl_etype, tmpl_anon, tmpl_cdf


def _items_by_phase_topic(cat: Catalog, n_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """The items fitting each (phase, topic), falling back to the items fitting the phase,
    then to all items: a padded table (phases x topics x slots) and the used slots."""
    n_items = len(cat.content_ids)
    fits = cat.phase_fit == 1.0
    item_lists: list[list[list[int]]] = []
    for ph in range(N_PHASES):
        row = []
        for t in range(n_topics):
            hit = np.nonzero(fits[:, ph] & (cat.topic == t))[0]
            if len(hit) == 0:
                hit = np.nonzero(fits[:, ph])[0]
            if len(hit) == 0:
                hit = np.arange(n_items)
            row.append(hit.tolist())
        item_lists.append(row)
    max_len = max(len(x) for row in item_lists for x in row)
    item_table = np.zeros((N_PHASES, n_topics, max_len), dtype=np.int64)
    item_count = np.zeros((N_PHASES, n_topics), dtype=np.int64)
    for ph in range(N_PHASES):
        for t in range(n_topics):
            item_table[ph, t, : len(item_lists[ph][t])] = item_lists[ph][t]
            item_count[ph, t] = len(item_lists[ph][t])
    return item_table, item_count


def _item_event_cdfs(content_types: list[str], names: _Names) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative event-type distributions per item (items x event types): of organic
    content touchpoints, and of responses to an exposure (which also include clicks)."""
    n_items = len(content_types)
    item_evt = np.zeros((n_items, len(names.event_types)))
    item_resp = np.zeros((n_items, len(names.event_types)))
    for i, ct in enumerate(content_types):
        for et, w in CONTENT_EVENTS.get(ct, {"view": 1.0}).items():
            item_evt[i, names.etype(et)] = w
            if et in RESPONSE_EVENTS:
                item_resp[i, names.etype(et)] = w
        item_resp[i, names.etype("click")] += 0.5
    item_evt_cdf = np.cumsum(item_evt / item_evt.sum(axis=1, keepdims=True), axis=1)
    item_resp_cdf = np.cumsum(item_resp / item_resp.sum(axis=1, keepdims=True), axis=1)
    item_evt_cdf[:, -1] = 1.0
    item_resp_cdf[:, -1] = 1.0
    return item_evt_cdf, item_resp_cdf
