"""The simulated world as drawn once at the start: the accounts with their latent parameters
and their buying centers (contacts, their roles, who leaves when and who replaces them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.lookups import Lookups
from features.simulate.params import (
    CONTACT_ROLE_SHARE,
    DAY_S,
    INDUSTRY_SPEED,
    MAX_CONTACTS,
    N_REPS,
    SECOND_NS,
    WEEK_NS,
    SimulationParams,
)
from features.simulate.response import Catalog, ResponseModel, role_vector
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY

_NEVER = np.iinfo(np.int32).max  # a week that never comes


@dataclass(frozen=True)
class Accounts:
    """Per-account attributes (arrays over accounts), fixed for the whole run."""

    industry: np.ndarray
    region: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    owner: np.ndarray
    created_ns: np.ndarray
    velocity: np.ndarray  # speed through the buying phases
    engagement: np.ndarray  # multiplier of the organic touchpoint rate
    frailty: np.ndarray  # proneness to churn
    health_target: np.ndarray  # the level customer health reverts to
    interest: np.ndarray  # accounts x topics
    topic_cdf: np.ndarray  # accounts x topics: topic choice of content touchpoints
    acv: np.ndarray  # annual contract value
    send_offset: np.ndarray  # ns after the week start at which exposures go out


@dataclass(frozen=True)
class BuyingCenters:
    """Each account's buying-center slots (accounts x MAX_CONTACTS) and the contacts who fill
    them. Contacts are numbered globally: the originals in account order, then the
    replacements."""

    slot_exists: np.ndarray
    slot_role: np.ndarray
    orig_idx: np.ndarray  # original contact per slot (-1: none)
    leave_week: np.ndarray  # week the original leaves
    rep_idx: np.ndarray  # replacement contact per slot (-1: none)
    rep_week: np.ndarray  # week the replacement arrives
    contact_acc: np.ndarray  # per contact
    contact_role: np.ndarray
    contact_created: np.ndarray
    contact_left: np.ndarray  # ns, -1 while at the account
    contact_gone: np.ndarray  # ns from which a contact no longer responds
    champion_contact: np.ndarray  # per account
    champion_left_week: np.ndarray

    def slots_at(self, week: int) -> np.ndarray:
        """Who is in each buying-center slot in a week (-1: vacant); contacts leave and
        arrive at week starts."""
        return np.where(
            week < self.leave_week, self.orig_idx, np.where(week >= self.rep_week, self.rep_idx, -1)
        )


@dataclass(frozen=True)
class World:
    """Everything fixed during a run: parameters, catalog, lookup tables, accounts, buying
    centers and the simulated time span (whole weeks from start_ns)."""

    params: SimulationParams
    taxonomy: Taxonomy
    content_frame: pd.DataFrame
    catalog: Catalog
    lookups: Lookups
    response: ResponseModel
    accounts: Accounts
    centers: BuyingCenters
    start_ns: int
    end_ns: int
    n_weeks: int

    @property
    def n_accounts(self) -> int:
        """The number of accounts."""
        return len(self.accounts.industry)


def draw_accounts(n: int, start_ns: int, tax: Taxonomy, rng: np.random.Generator) -> Accounts:
    """Returns ``n`` accounts with firmographics and latent parameters."""
    industries = list(tax.industries)
    industry = rng.integers(0, len(industries), n)
    region = rng.integers(0, len(tax.regions), n)
    employees = np.clip(np.round(rng.lognormal(np.log(150.0), 1.3, n)), 2, 500_000).astype(np.int64)
    revenue = employees * rng.lognormal(np.log(180_000.0), 0.5, n)
    owner = rng.integers(1, N_REPS + 1, n)
    created_ns = start_ns - (rng.uniform(90, 1500, n) * NS_PER_DAY).astype(np.int64)
    created_ns -= created_ns % SECOND_NS
    speed_industry = np.array([INDUSTRY_SPEED.get(i, 1.0) for i in industries])[industry]
    velocity = (
        np.exp(-0.12 * (np.log(employees) - np.log(200.0)))
        * speed_industry
        * rng.lognormal(0.0, 0.35, n)
    )
    engagement = rng.lognormal(0.0, 0.4, n) * (employees / 200.0) ** 0.08
    frailty = rng.standard_normal(n)
    interest = rng.standard_normal((n, len(tax.topic_names)))
    topic_w = np.exp(interest)
    topic_cdf = np.cumsum(topic_w / topic_w.sum(axis=1, keepdims=True), axis=1)
    acv = 20_000.0 * (employees / 200.0) ** 0.5 * rng.lognormal(0.0, 0.3, n)
    # Exposures go out at an account-specific time in the first two working days of a week.
    send_offset = (rng.integers(0, 2, n) * DAY_S + 8 * 3600 + rng.integers(0, 10 * 3600, n)).astype(
        np.int64
    ) * SECOND_NS
    return Accounts(
        industry=industry,
        region=region,
        employees=employees,
        revenue=revenue,
        owner=owner,
        created_ns=created_ns,
        velocity=velocity,
        engagement=engagement,
        frailty=frailty,
        health_target=-0.5 * frailty,
        interest=interest,
        topic_cdf=topic_cdf,
        acv=acv,
        send_offset=send_offset,
    )


def draw_buying_centers(
    accounts: Accounts,
    roles: list[str],
    *,
    start_ns: int,
    n_weeks: int,
    p: SimulationParams,
    rng: np.random.Generator,
) -> BuyingCenters:
    """Returns contacts_min to contacts_min + contacts_extra contacts per account (more in
    larger accounts; at most MAX_CONTACTS), each original leaving after a geometric number
    of weeks and most replaced a few weeks later."""
    n = len(accounts.employees)
    size_share = p.contacts_size_share + 0.1 * (np.log(accounts.employees) - np.log(150.0))
    n_contacts = np.minimum(
        p.contacts_min + rng.binomial(p.contacts_extra, np.clip(size_share, 0.05, 0.95)),
        MAX_CONTACTS,
    )
    slot_exists = np.arange(MAX_CONTACTS)[None, :] < n_contacts[:, None]
    role_share = role_vector(CONTACT_ROLE_SHARE, roles)
    slot_role = rng.choice(len(roles), size=(n, MAX_CONTACTS), p=role_share / role_share.sum())
    if "economic_buyer" in roles:
        slot_role[:, 0] = roles.index("economic_buyer")  # every buying center has a decider
    champion_slot = rng.integers(0, n_contacts)
    # Originals: one per existing slot, in account order.
    orig_acc, orig_slot = np.nonzero(slot_exists)
    n_orig = len(orig_acc)
    orig_idx = np.full((n, MAX_CONTACTS), -1, dtype=np.int64)
    orig_idx[orig_acc, orig_slot] = np.arange(n_orig)
    leave_week = np.full((n, MAX_CONTACTS), _NEVER, dtype=np.int64)
    leaves = rng.geometric(p.contact_leave_weekly, n_orig)  # weeks until leaving
    leave_week[orig_acc, orig_slot] = leaves
    replaced = (leaves < n_weeks - 1) & (rng.random(n_orig) < p.contact_replaced_share)
    rep_gap = rng.integers(2, 13, n_orig)
    rep_ok = replaced & (leaves + rep_gap < n_weeks)
    rep_acc, rep_slot = orig_acc[rep_ok], orig_slot[rep_ok]
    rep_idx = np.full((n, MAX_CONTACTS), -1, dtype=np.int64)
    rep_idx[rep_acc, rep_slot] = n_orig + np.arange(len(rep_acc))
    rep_week = np.full((n, MAX_CONTACTS), _NEVER, dtype=np.int64)
    rep_week[rep_acc, rep_slot] = (leaves + rep_gap)[rep_ok]
    span = np.maximum(start_ns - accounts.created_ns[orig_acc], NS_PER_DAY)
    orig_created = accounts.created_ns[orig_acc] + (rng.random(n_orig) * span).astype(np.int64)
    orig_created -= orig_created % SECOND_NS
    contact_left = np.full(n_orig + len(rep_acc), -1, dtype=np.int64)
    left_mask = leaves < n_weeks
    contact_left[:n_orig][left_mask] = start_ns + leaves[left_mask] * WEEK_NS
    return BuyingCenters(
        slot_exists=slot_exists,
        slot_role=slot_role,
        orig_idx=orig_idx,
        leave_week=leave_week,
        rep_idx=rep_idx,
        rep_week=rep_week,
        contact_acc=np.concatenate([orig_acc, rep_acc]),
        contact_role=np.concatenate([slot_role[orig_acc, orig_slot], slot_role[rep_acc, rep_slot]]),
        contact_created=np.concatenate(
            [orig_created, start_ns + rep_week[rep_acc, rep_slot] * WEEK_NS]
        ),
        contact_left=contact_left,
        # Contacts respond only while still at the account.
        contact_gone=np.where(contact_left >= 0, contact_left, np.iinfo(np.int64).max),
        champion_contact=orig_idx[np.arange(n), champion_slot],
        champion_left_week=leave_week[np.arange(n), champion_slot],
    )
