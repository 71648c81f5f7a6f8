"""The weekly step of exposures and responses: decision points come at a rate set by what a
sender knows (the CRM's last record and the week's activity with known contacts), where the
logging policy picks content by the CRM-recorded phase; a contact responds with the response
model's probability (fit to the TRUE phase, role x phase, topic x phase, recency-weighted
fatigue, channel and content type)."""

from __future__ import annotations

import numpy as np

from features.simulate.draws import durations, pick, pick_cdf
from features.simulate.params import DAY_S, FATIGUE_SLOTS, SECOND_NS
from features.simulate.records import Records
from features.simulate.response import fatigue_weight, sigmoid
from features.simulate.state import State, Week
from features.simulate.world import World
from features.timestamps import NS_PER_DAY

_HOUR_NS = 3600 * SECOND_NS


def exposures_and_responses(
    world: World, state: State, week: Week, rng: np.random.Generator, records: Records
) -> np.ndarray:
    """Records this week's exposures (up to two per account, an hour apart) and responses;
    returns per account the number of responses to content fitting its true phase."""
    n, p = world.n_accounts, world.params
    responded_fit = np.zeros(n)
    # What the sender knows: the CRM's last record (NO_STAGE: none yet) and whether the
    # account showed activity with a known contact this week; "true" is the legacy world's
    # sender, who knew the latent phase.
    known_phase = state.phase if p.exposure_phase_source == "true" else state.crm_phase
    active = np.where(state.touched > 0, p.exposure_activity_boost, 1.0)
    first = rng.random(n) < np.minimum(world.lookups.exposure_rate[known_phase] * active, 1.0)
    second = first & (rng.random(n) < p.second_exposure)
    for k, chosen in enumerate((first, second)):
        _apply_due_crm_records(world, state, week.start_ns + k * _HOUR_NS)
        responded_fit += _send(world, state, week, k, chosen, rng, records)
    return responded_fit


def _apply_due_crm_records(world: World, state: State, send_ns: int) -> None:
    """CRM records due by an account's send time (``send_ns`` + its send offset) update the
    recorded phase the policy sees; the latest due record of an account wins."""
    if not len(state.pend_acc):
        return
    due = state.pend_ts <= send_ns + world.accounts.send_offset[state.pend_acc]
    if not due.any():
        return
    d_acc, d_ts, d_ph = state.pend_acc[due], state.pend_ts[due], state.pend_phase[due]
    order = np.lexsort((d_ts, d_acc))
    d_acc, d_ph = d_acc[order], d_ph[order]
    last = np.append(d_acc[1:] != d_acc[:-1], True)
    state.crm_phase[d_acc[last]] = d_ph[last]
    keep = ~due
    state.pend_acc, state.pend_ts, state.pend_phase = (
        state.pend_acc[keep],
        state.pend_ts[keep],
        state.pend_phase[keep],
    )


def _send(
    world: World,
    state: State,
    week: Week,
    k: int,
    chosen: np.ndarray,
    rng: np.random.Generator,
    records: Records,
) -> np.ndarray:
    """Exposes a current contact of each ``chosen`` account to an item of the logging policy
    (the ``k``-th exposure of the week) and records it and any response; returns per account
    the number of responses to content fitting its true phase."""
    lk, cat, slot_contact = world.lookups, world.catalog, week.slot_contact
    x_acc = np.nonzero(chosen)[0]
    active = slot_contact[x_acc] >= 0
    slot = pick(active.astype(float), rng.random(len(x_acc)))
    ok = slot >= 0
    x_acc, slot = x_acc[ok], slot[ok]
    n_x = len(x_acc)
    if n_x == 0:
        return np.zeros(world.n_accounts)
    x_contact = slot_contact[x_acc, slot]
    x_ts = week.start_ns + world.accounts.send_offset[x_acc] + k * _HOUR_NS
    x_item = pick_cdf(lk.policy_cdf[state.crm_phase[x_acc]], rng.random(n_x))
    x_prop = lk.policy[state.crm_phase[x_acc], x_item]
    x_channel = np.where(
        rng.random(n_x) < world.params.exposure_email_share,
        lk.codes.ch_email,
        lk.item_channel[x_item],
    )
    fatigue = _fatigue(world, state, x_contact, x_ts)
    x_phase = state.phase[x_acc]
    fit = cat.phase_fit[x_item, x_phase]
    prob = sigmoid(
        world.response.logit(
            cat,
            item=x_item,
            phase=x_phase,
            role=world.centers.slot_role[x_acc, slot],
            interest=world.accounts.interest[x_acc, cat.topic[x_item]],
            fatigue=fatigue,
            channel=x_channel,
        )
    )
    r_ts = x_ts + rng.integers(60, 7 * DAY_S, n_x) * SECOND_NS
    # A contact who leaves before responding does not respond.
    responds = (rng.random(n_x) < prob) & (r_ts < world.centers.contact_gone[x_contact])
    r = np.nonzero(responds & (r_ts < world.end_ns))[0]
    if len(r):
        r_etype = pick_cdf(lk.item_resp_cdf[x_item[r]], rng.random(len(r)))
        records.events.add(
            x_acc[r],
            x_contact[r],
            r_ts[r],
            x_channel[r],
            r_etype,
            x_item[r],
            durations(r_etype, lk.codes.et_view, lk.codes.et_attend, rng),
        )
    records.add_exposures(acc=x_acc, contact=x_contact, item=x_item, ts=x_ts, channel=x_channel,
                          prop=x_prop, phase=x_phase, p=prob, resp=responds)  # fmt: skip
    return np.bincount(x_acc[responds & (fit == 1.0)], minlength=world.n_accounts)


def fatigue_at(world: World, state: State, contact: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each contact's fatigue at ``ts``: its exposures in [ts - fatigue window, ts) weighted
    by recency (fatigue_weight)."""
    p = world.params
    window_ns = p.fatigue_window_days * NS_PER_DAY
    ring = state.fatigue_ring[contact]
    inside = (ring >= (ts - window_ns)[:, None]) & (ring < ts[:, None])
    age = np.where(inside, ts[:, None] - ring, 0)
    fatigue: np.ndarray = np.where(inside, fatigue_weight(age, p.fatigue_halflife_days), 0.0).sum(1)
    return fatigue


def remember_exposure(state: State, contact: np.ndarray, ts: np.ndarray) -> None:
    """Remembers ``ts`` as each contact's latest exposure (what its fatigue counts)."""
    state.fatigue_ring[contact, state.fatigue_pos[contact] % FATIGUE_SLOTS] = ts
    state.fatigue_pos[contact] += 1


def _fatigue(world: World, state: State, contact: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Returns each contact's fatigue (:func:`fatigue_at`) and remembers ``ts`` as the
    contact's latest exposure."""
    fatigue = fatigue_at(world, state, contact, ts)
    remember_exposure(state, contact, ts)
    return fatigue
