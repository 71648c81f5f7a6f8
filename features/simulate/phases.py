"""The weekly step of phase progression: advances, lost deals and churn at the next week's
start, the lifecycle events they cause (purchases, closed expansions, churn), and the late,
sometimes wrong, skipped or backdated CRM records of each change."""

from __future__ import annotations

import numpy as np

from features.simulate.draws import choose_contacts
from features.simulate.params import (
    DAY_S,
    EARLY_PHASES,
    EXPANSION,
    IMPACT,
    N_PHASES,
    ONBOARDING,
    PURCHASE,
    SECOND_NS,
    SELECTION,
    TRIGGER,
    WEEK_NS,
)
from features.simulate.records import NOT_RECORDED, Records
from features.simulate.state import NO_CONTRACT, State, Week
from features.simulate.world import World


def transition(
    world: World,
    state: State,
    week: Week,
    cust_h: np.ndarray,
    rng: np.random.Generator,
    records: Records,
) -> None:
    """Moves every account to its phase of the next week (customers churn with hazard
    ``cust_h``) and records the changes, their lifecycle events and CRM records."""
    new_phase, churns = _next_phases(world, state, week, cust_h, rng)
    changed = np.nonzero(new_phase != state.phase)[0]
    if len(changed):
        _lifecycle_events(world, state, week, changed, new_phase, churns, rng, records)
        state.boost[changed] = 0.0
        _record_changes(world, state, week, changed, new_phase, rng, records)
    state.phase = new_phase


def _next_phases(
    world: World, state: State, week: Week, cust_h: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Returns next week's phase per account and which accounts churn. One uniform per
    account decides: churn (customers) or loss (others) first, else an advance whose hazard
    rises with the response momentum (the lever)."""
    p, lk, phase, customer = world.params, world.lookups, state.phase, week.customer
    advance = lk.advance
    u = rng.random(world.n_accounts)
    lever = np.exp(p.response_boost * state.boost)
    adv_h = advance[phase] * np.where(phase <= PURCHASE, world.accounts.velocity * lever, 1.0)
    adv_h = np.where(phase == EXPANSION, advance[EXPANSION], adv_h)
    adv_h = np.where(phase == IMPACT, advance[IMPACT] * lever * np.exp(0.3 * state.health), adv_h)
    adv_h = np.where((phase == TRIGGER) & state.ever_churned, adv_h * p.rebuy_after_churn, adv_h)
    adv_p = 1.0 - np.exp(-adv_h)
    loss_p = lk.loss[phase]
    churns = customer & (u < cust_h)
    lost = ~customer & (u < loss_p)
    advances = (
        ~churns
        & ~lost
        & (u >= np.where(customer, cust_h, loss_p))
        & (u < np.where(customer, cust_h, loss_p) + adv_p)
    )
    new_phase = phase.copy()
    new_phase[churns | lost] = TRIGGER
    new_phase[advances] = np.where(phase[advances] == EXPANSION, IMPACT, phase[advances] + 1)
    return new_phase, churns


def _lifecycle_events(
    world: World,
    state: State,
    week: Week,
    changed: np.ndarray,
    new_phase: np.ndarray,
    churns: np.ndarray,
    rng: np.random.Generator,
    records: Records,
) -> None:
    """Records purchases (entering onboarding), closed expansion deals and churn at the
    start of the new phase, with next week's contacts, and starts or ends the contracts."""
    lk, acv, phase = world.lookups, world.accounts.acv, state.phase
    nxt = week.start_ns + WEEK_NS
    slots_next = world.centers.slots_at(week.index + 1)
    buy = changed[(phase[changed] == PURCHASE) & (new_phase[changed] == ONBOARDING)]
    closes = changed[(phase[changed] == EXPANSION) & (new_phase[changed] == IMPACT)]
    closes = closes[rng.random(len(closes)) < world.params.expansion_close_share]
    gone = changed[churns[changed]]
    for accs, life_et, amount in (
        (buy, lk.codes.et_purchase, acv[buy]),
        (closes, lk.codes.et_purchase, 0.3 * acv[closes]),
        (gone, lk.codes.et_churn, np.full(len(gone), np.nan)),
    ):
        if len(accs):
            life_ch = lk.codes.ch_service if life_et == lk.codes.et_churn else lk.codes.ch_sales
            records.events.add(
                accs,
                choose_contacts(accs, lk.contract_roles, slots_next, world.centers, rng),
                nxt + rng.integers(0, DAY_S, len(accs)) * SECOND_NS,
                life_ch,
                life_et,
                value=amount,
            )
    state.contract_week[buy] = week.index + 1
    state.trainings[buy] = 0
    state.ever_churned[gone] = True
    state.contract_week[gone] = NO_CONTRACT


def _record_changes(
    world: World,
    state: State,
    week: Week,
    changed: np.ndarray,
    new_phase: np.ndarray,
    rng: np.random.Generator,
    records: Records,
) -> None:
    """Records the new truth segments and their CRM records: late (lognormal lag), with
    stage_error_rate a neighbouring phase, early phases mostly not at all (a loss only when
    an opportunity was lost), other changes sometimes skipped, some backdated to the
    change's date; the records wait in the state until the sender can see them."""
    p = world.params
    nxt = week.start_ns + WEEK_NS
    n_c = len(changed)
    lag_mu = np.log(p.stage_lag_median_days)
    lag = (rng.lognormal(lag_mu, p.stage_lag_sigma, n_c) * DAY_S).astype(np.int64)
    known_ts = nxt + lag * SECOND_NS
    r_phase = new_phase[changed].copy()
    wrong = rng.random(n_c) < p.stage_error_rate
    step = np.where(rng.random(n_c) < 0.5, -1, 1)
    step = np.where(r_phase == 0, 1, np.where(r_phase == N_PHASES - 1, -1, step))
    r_phase[wrong] += step[wrong]
    u = rng.random(n_c)
    to = new_phase[changed]
    lost_opportunity = (to == TRIGGER) & (state.phase[changed] >= SELECTION)
    early = np.isin(to, EARLY_PHASES) & ~lost_opportunity
    recorded = np.where(
        early, u < p.crm_early_record_share, (to == ONBOARDING) | (u >= p.stage_skip_rate)
    )
    backdated = rng.random(n_c) < p.stage_backdate_share
    table_ts = np.where(backdated, nxt + rng.integers(0, DAY_S, n_c) * SECOND_NS, known_ts)
    records.add_segments(
        changed,
        new_phase[changed],
        np.full(n_c, nxt, dtype=np.int64),
        np.where(recorded, table_ts, NOT_RECORDED),
        r_phase,
    )
    state.pend_acc = np.concatenate([state.pend_acc, changed[recorded]])
    state.pend_ts = np.concatenate([state.pend_ts, known_ts[recorded]])
    state.pend_phase = np.concatenate([state.pend_phase, r_phase[recorded]])
