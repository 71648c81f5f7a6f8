"""The weekly step of organic touchpoints: how many each account has, which template
(channel, event type) or content item, and which contact."""

from __future__ import annotations

import numpy as np

from features.simulate.draws import choose_contacts, durations, pick_cdf
from features.simulate.params import CUSTOMER_PHASES, DAY_S, SECOND_NS
from features.simulate.records import Events
from features.simulate.state import State, Week
from features.simulate.world import World


def organic_touchpoints(
    world: World, state: State, week: Week, rng: np.random.Generator, events: Events
) -> None:
    """Records this week's organic touchpoints: their rate, template, content and contact
    role depend on the latent phase; the contact is unknown with the template's or the
    channel's anonymous share; customers' trainings count towards onboarding. Sets the
    accounts' touchpoints with a known contact this week (what a sender can observe)."""
    lk, n = world.lookups, world.n_accounts
    eng = np.where(week.customer, np.exp(0.5 * state.eng_level), 1.0)
    rate = lk.touch_rate[state.phase] * world.accounts.engagement * eng
    n_touch = rng.poisson(rate)
    e_acc = np.repeat(np.arange(n), n_touch)
    n_e = len(e_acc)
    if not n_e:
        state.touched = np.zeros(n, dtype=np.int64)
        return
    e_phase = state.phase[e_acc]
    tmpl = pick_cdf(lk.tmpl_cdf[e_phase], rng.random(n_e))
    e_channel = lk.tmpl_channel[e_phase, tmpl]
    e_etype = lk.tmpl_etype[e_phase, tmpl]
    e_item = np.full(n_e, -1, dtype=np.int64)
    c_pos = np.nonzero(tmpl == 0)[0]
    if len(c_pos):
        item, etype, channel = _content(world, state, rng, e_acc[c_pos], e_phase[c_pos])
        e_item[c_pos], e_etype[c_pos], e_channel[c_pos] = item, etype, channel
    contact = choose_contacts(
        e_acc,
        lk.role_w_phase[e_phase],
        week.slot_contact,
        world.centers,
        rng,
        item=e_item,
        cat=world.catalog,
    )
    anon = rng.random(n_e) < np.maximum(lk.tmpl_anon[e_phase, tmpl], lk.anon_channel[e_channel])
    contact[anon] = -1
    state.touched = np.bincount(e_acc[contact >= 0], minlength=n)
    events.add(
        e_acc,
        contact,
        week.start_ns + rng.integers(0, 7 * DAY_S, n_e) * SECOND_NS,
        e_channel,
        e_etype,
        e_item,
        durations(e_etype, lk.codes.et_view, lk.codes.et_attend, rng),
    )


def _content(
    world: World,
    state: State,
    rng: np.random.Generator,
    c_acc: np.ndarray,
    c_phase: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns item, event type and channel of content touchpoints of accounts ``c_acc`` in
    phases ``c_phase``: an item fitting the phase and a topic the account is interested in
    (or, as noise, any item), mostly through the item's usual channel. Customers' trainings
    count towards onboarding."""
    lk, n_c = world.lookups, len(c_acc)
    topic = pick_cdf(world.accounts.topic_cdf[c_acc], rng.random(n_c))
    k = (rng.random(n_c) * lk.item_count[c_phase, topic]).astype(np.int64)
    item = lk.item_table[c_phase, topic, k]
    noise = rng.random(n_c) < world.params.organic_noise
    item[noise] = rng.integers(0, len(world.catalog.content_ids), int(noise.sum()))
    etype = pick_cdf(lk.item_evt_cdf[item], rng.random(n_c))
    usual = rng.random(n_c) < 0.75
    channel = np.where(
        usual,
        lk.item_channel[item],
        lk.noise_channels[rng.integers(0, len(lk.noise_channels), n_c)],
    )
    trained = lk.is_training[item] & np.isin(c_phase, CUSTOMER_PHASES)
    state.trainings += np.bincount(c_acc[trained], minlength=world.n_accounts)
    return item, etype, channel
