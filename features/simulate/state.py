"""The state the weekly steps evolve (arrays over accounts or contacts), the context of one
week, and the state and records at the start of a run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulate.draws import choose_contacts
from features.simulate.params import (
    CUSTOMER_PHASES,
    DAY_S,
    EARLY_PHASES,
    FATIGUE_SLOTS,
    N_PHASES,
    NO_STAGE,
    ONBOARDING,
    SECOND_NS,
    TICKET_WEEKS,
    TREND_WEEKS,
    WEEK_NS,
)
from features.simulate.records import NOT_RECORDED, Records
from features.simulate.world import World
from features.timestamps import NS_PER_DAY

NO_CONTRACT = np.iinfo(np.int32).min  # contract_week of an account that is no customer


@dataclass
class State:
    """The per-account and per-contact arrays the weekly steps update."""

    phase: np.ndarray  # latent phase per account
    crm_phase: np.ndarray  # the phase the CRM shows (NO_STAGE: none), which the sender reads
    contract_week: np.ndarray  # week the current contract started (NO_CONTRACT: none)
    trainings: np.ndarray  # trainings attended during the current contract
    ever_churned: np.ndarray
    boost: np.ndarray  # momentum from responses to fitting content (the lever)
    health: np.ndarray  # customer health (drives usage, tickets, churn)
    eng_level: np.ndarray  # customer engagement level
    health_hist: np.ndarray  # accounts x (TREND_WEEKS + 1): ring of weekly health
    eng_hist: np.ndarray  # accounts x (TREND_WEEKS + 1): ring of weekly engagement
    ticket_hist: np.ndarray  # accounts x TICKET_WEEKS: ring of weekly ticket counts
    fatigue_ring: np.ndarray  # contacts x FATIGUE_SLOTS: ring of recent exposure times
    fatigue_pos: np.ndarray  # contacts: exposures so far (the ring's write position)
    touched: np.ndarray  # accounts: this week's touchpoints with a known contact
    # CRM records of phase changes not yet visible (account, time due, recorded phase).
    pend_acc: np.ndarray
    pend_ts: np.ndarray
    pend_phase: np.ndarray


@dataclass(frozen=True)
class Week:
    """One simulated week as the steps see it at its start."""

    index: int
    start_ns: int
    slot_contact: np.ndarray  # accounts x slots: who is in each buying-center slot
    customer: np.ndarray  # accounts: in a customer phase at the week start
    cust_idx: np.ndarray  # indices of the customers


def week_at(world: World, state: State, w: int) -> Week:
    """Returns the context of week ``w`` for the current state."""
    customer = np.isin(state.phase, CUSTOMER_PHASES)
    return Week(
        index=w,
        start_ns=world.start_ns + w * WEEK_NS,
        slot_contact=world.centers.slots_at(w),
        customer=customer,
        cust_idx=np.nonzero(customer)[0],
    )


def initial_state(world: World, rng: np.random.Generator) -> State:
    """Returns the state at the start: phases drawn from initial_phase_share, customers
    with a contract of the last year (onboarding ones of the last two months)."""
    p, acc = world.params, world.accounts
    n = world.n_accounts
    share = np.asarray(p.initial_phase_share, dtype=float)
    phase = rng.choice(N_PHASES, size=n, p=share / share.sum()).astype(np.int64)
    contract_week = np.where(
        phase == ONBOARDING, -rng.integers(1, 9, n), -rng.integers(1, 52, n)
    ).astype(np.int64)
    contract_week[~np.isin(phase, CUSTOMER_PHASES)] = NO_CONTRACT
    trainings = np.where(phase == ONBOARDING, 0, rng.poisson(2.0, n)).astype(np.int64)
    health = acc.health_target + 0.45 * rng.standard_normal(n)
    eng_level = -0.4 * acc.frailty + 0.45 * rng.standard_normal(n)
    n_contacts = len(world.centers.contact_acc)
    return State(
        phase=phase,
        crm_phase=np.full(n, NO_STAGE, dtype=np.int64),  # set by initial_records
        contract_week=contract_week,
        trainings=trainings,
        ever_churned=np.zeros(n, dtype=bool),
        boost=np.zeros(n),
        health=health,
        eng_level=eng_level,
        health_hist=np.repeat(health[:, None], TREND_WEEKS + 1, axis=1),
        eng_hist=np.repeat(eng_level[:, None], TREND_WEEKS + 1, axis=1),
        ticket_hist=np.zeros((n, TICKET_WEEKS), dtype=np.int64),
        fatigue_ring=np.full((n_contacts, FATIGUE_SLOTS), np.iinfo(np.int64).min // 2),
        fatigue_pos=np.zeros(n_contacts, dtype=np.int64),
        touched=np.zeros(n, dtype=np.int64),
        pend_acc=np.empty(0, dtype=np.int64),
        pend_ts=np.empty(0, dtype=np.int64),
        pend_phase=np.empty(0, dtype=np.int64),
    )


def initial_records(world: World, state: State, rng: np.random.Generator) -> Records:
    """Returns the records at the start and sets the CRM's phase of each account: the
    initial customers' contracts (the CRM knows their purchase) and each account's current
    phase segment, recorded when it began (early phases only with crm_early_record_share;
    NOT_RECORDED: never)."""
    records = Records()
    lk, start_ns = world.lookups, world.start_ns
    init_cust = np.nonzero(np.isin(state.phase, CUSTOMER_PHASES))[0]
    if len(init_cust):
        ts0 = (
            start_ns
            + state.contract_week[init_cust] * WEEK_NS
            + (rng.integers(0, DAY_S, len(init_cust)) * SECOND_NS)
        )
        records.events.add(
            init_cust,
            choose_contacts(
                init_cust, lk.contract_roles, world.centers.orig_idx, world.centers, rng
            ),
            ts0,
            lk.codes.ch_sales,
            lk.codes.et_purchase,
            value=world.accounts.acv[init_cust],
        )
    n = world.n_accounts
    init_start = start_ns - (rng.uniform(0, 60, n) * NS_PER_DAY).astype(np.int64)
    init_start -= init_start % SECOND_NS
    # The CRM starts late: an account in an early phase has a record only with
    # crm_early_record_share (the legacy world records every account).
    early = np.isin(state.phase, EARLY_PHASES)
    if world.params.crm_early_record_share < 1.0:
        early &= rng.random(n) >= world.params.crm_early_record_share
    else:
        early[:] = False
    state.crm_phase = np.where(early, NO_STAGE, state.phase)
    records.add_segments(
        np.arange(n),
        state.phase.copy(),
        init_start,
        np.where(early, NOT_RECORDED, init_start),
        state.phase.copy(),
    )
    return records
