"""Weekly steps of the customers: health and engagement, product usage and support tickets,
the churn hazard, and renewals at contract anniversaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulate.draws import choose_contacts
from features.simulate.params import DAY_S, ONBOARDING, SECOND_NS, TICKET_WEEKS, TREND_WEEKS
from features.simulate.records import Events, Records
from features.simulate.response import sigmoid
from features.simulate.state import State, Week
from features.simulate.world import World

_HISTORY = TREND_WEEKS + 1  # slots of the health and engagement rings


@dataclass(frozen=True)
class ChurnDrivers:
    """This week's churn drivers that are not part of the state (arrays over accounts)."""

    champion_recent: np.ndarray  # the champion left within the last half year
    few_trainings: np.ndarray  # fewer than two trainings three months into the contract


def update_health(world: World, state: State, week: Week, rng: np.random.Generator) -> ChurnDrivers:
    """Moves health and engagement one week towards their targets (lower after a champion
    left or with few trainings), records them in the trend rings and returns those drivers."""
    w, acc = week.index, world.accounts
    n = world.n_accounts
    champ_left = world.centers.champion_left_week
    champ_recent = (w >= champ_left) & (w < champ_left + 26)
    few_trainings = (state.trainings < 2) & (w - state.contract_week > 12)
    target = acc.health_target - 0.6 * few_trainings - 0.5 * champ_recent
    state.health = 0.9 * state.health + 0.1 * target + 0.2 * rng.standard_normal(n)
    state.eng_level = (
        0.9 * state.eng_level
        + 0.1 * (-0.4 * acc.frailty - 0.4 * champ_recent)
        + (0.2 * rng.standard_normal(n))
    )
    state.health_hist[:, w % _HISTORY] = state.health
    state.eng_hist[:, w % _HISTORY] = state.eng_level
    return ChurnDrivers(champion_recent=champ_recent, few_trainings=few_trainings)


def service_events(
    world: World, state: State, week: Week, rng: np.random.Generator, events: Events
) -> None:
    """Product usage (more with better health) and support tickets (more in onboarding, for
    frail and unhealthy customers) of this week's customers."""
    lk, cust_idx, ws = world.lookups, week.cust_idx, week.start_ns
    n_usage = rng.poisson(0.3 * np.exp(state.health[cust_idx]))
    if n_usage.sum():
        u_acc = np.repeat(cust_idx, n_usage)
        events.add(
            u_acc,
            choose_contacts(u_acc, lk.usage_roles, week.slot_contact, world.centers, rng),
            ws + rng.integers(0, 7 * DAY_S, len(u_acc)) * SECOND_NS,
            lk.codes.ch_product,
            lk.codes.et_usage,
        )
    onboarding_load = 1.0 + 1.5 * (state.phase[cust_idx] == ONBOARDING)
    n_ticket = rng.poisson(
        0.06
        * onboarding_load
        * np.exp(0.6 * world.accounts.frailty[cust_idx] - 0.5 * state.health[cust_idx])
    )
    state.ticket_hist[:, week.index % TICKET_WEEKS] = 0
    state.ticket_hist[cust_idx, week.index % TICKET_WEEKS] = n_ticket
    if n_ticket.sum():
        t_acc = np.repeat(cust_idx, n_ticket)
        events.add(
            t_acc,
            choose_contacts(t_acc, lk.ticket_roles, week.slot_contact, world.centers, rng),
            ws + rng.integers(0, 7 * DAY_S, len(t_acc)) * SECOND_NS,
            lk.codes.ch_service,
            lk.codes.et_ticket,
        )


def churn_hazard(
    world: World, state: State, week: Week, drivers: ChurnDrivers, records: Records
) -> np.ndarray:
    """Returns the weekly churn hazard per account (0 for non-customers), higher in the last
    week of a contract year and for smaller accounts, and records the customers' hazards as
    truth."""
    p, w, cust_idx = world.params, week.index, week.cust_idx
    cust_h = np.zeros(world.n_accounts)
    if len(cust_idx):
        now, old = w % _HISTORY, (w - TREND_WEEKS) % _HISTORY
        usage_trend = state.health_hist[cust_idx, now] - state.health_hist[cust_idx, old]
        eng_trend = state.eng_hist[cust_idx, now] - state.eng_hist[cust_idx, old]
        risk = (
            p.churn_few_trainings * drivers.few_trainings[cust_idx]
            + p.churn_per_ticket * state.ticket_hist[cust_idx].sum(axis=1)
            - p.churn_usage_decline * usage_trend
            - p.churn_engagement_decline * eng_trend
            + p.churn_champion_left * drivers.champion_recent[cust_idx]
            + p.churn_frailty * world.accounts.frailty[cust_idx]
            - p.churn_health * state.health[cust_idx]
            + p.churn_size * (np.log(world.accounts.employees[cust_idx]) - np.log(200.0))
        )
        # Annual contracts: the decision to leave falls in a contract year's last week (the
        # churn takes effect at the anniversary, so no renewal is recorded); between
        # renewals the drivers weigh churn_midterm_drivers as much.
        renewal = (w - state.contract_week[cust_idx]) % 52 == 51
        logit = (
            p.churn_base
            + p.churn_at_renewal * renewal
            + np.where(renewal, 1.0, p.churn_midterm_drivers) * risk
        )
        cust_h[cust_idx] = sigmoid(logit)
        records.hz_acc.append(cust_idx.astype(np.int32))
        records.hz_week.append(np.full(len(cust_idx), w, dtype=np.int32))
        records.hz_val.append(cust_h[cust_idx])
    return cust_h


def renewals(
    world: World, state: State, week: Week, rng: np.random.Generator, events: Events
) -> None:
    """Renewal events of customers at a contract anniversary, at up to 10 % more value."""
    w = week.index
    since = w - state.contract_week
    anniversary = week.customer & (w > state.contract_week) & (since % 52 == 0)
    ren = np.nonzero(anniversary)[0]
    if len(ren):
        lk = world.lookups
        events.add(
            ren,
            choose_contacts(ren, lk.contract_roles, week.slot_contact, world.centers, rng),
            week.start_ns + rng.integers(0, 3 * DAY_S, len(ren)) * SECOND_NS,
            lk.codes.ch_sales,
            lk.codes.et_renewal,
            value=world.accounts.acv[ren] * rng.uniform(1.0, 1.1, len(ren)),
        )
