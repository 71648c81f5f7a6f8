"""A simulation run: checks the arguments, draws the world and the initial state, steps the
weekly world and assembles the tables.

Every random draw comes from one ``numpy.random.Generator`` seeded once, in a fixed order
(the world, the initial state, then each week's steps in the order of :func:`_run_week`);
changing that order changes the data a seed gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.customers import churn_hazard, renewals, service_events, update_health
from features.simulate.exposures import exposures_and_responses
from features.simulate.lookups import build_lookups
from features.simulate.names import add_names
from features.simulate.oracle import churn_oracle_at, oracle_weeks
from features.simulate.params import (
    N_PHASES,
    WEEK_NS,
    SimulationError,
    SimulationParams,
)
from features.simulate.phases import transition
from features.simulate.records import Records
from features.simulate.response import ResponseModel, build_catalog
from features.simulate.state import State, Week, initial_records, initial_state, week_at
from features.simulate.tables import IdStart, Simulation, assemble
from features.simulate.touchpoints import organic_touchpoints
from features.simulate.world import World, draw_accounts, draw_buying_centers
from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import to_utc


def simulate(
    n_accounts: int,
    seed: int,
    *,
    start: pd.Timestamp | str = "2024-01-01",
    months: int = 24,
    taxonomy: Taxonomy | None = None,
    params: SimulationParams | None = None,
    oracle_as_of: Sequence[pd.Timestamp | str] = (),
    oracle_draws: int = 100,
    oracle_horizon_days: int = 90,
    first_ids: IdStart | None = None,
) -> Simulation:
    """Simulate ``n_accounts`` B2B journeys for ``months`` months from ``start`` (UTC).

    Returns the six tables in canonical dtypes and the ground truth. Deterministic given
    ``seed`` (and taxonomy and params). With ``oracle_as_of`` dates the truth's
    ``churn_oracle`` holds, per account that is a customer at each date, the probability of
    churning within ``oracle_horizon_days`` given the latent state, from ``oracle_draws``
    Monte Carlo runs of the weekly steps (``features.simulate.oracle``); the tables are the
    same as without. ``first_ids``: where the ids start (a chunk of a larger world,
    ``features.simulate.chunked``; default from 1). Assumes the taxonomy's default phase
    model has eight phases in the order trigger ... expansion (names may differ) and that it
    has the channels and event types the simulator emits (search_ads, product, usage,
    purchase, ...).
    """
    run = start_run(n_accounts, seed, start=start, months=months, taxonomy=taxonomy, params=params)
    world, state, records, rng = run.world, run.state, run.records, run.rng
    n_weeks = world.n_weeks
    at_week = oracle_weeks(world, oracle_as_of, oracle_horizon_days)
    oracle: list[pd.DataFrame] = []
    for w in range(n_weeks):
        for as_of_ns in at_week.get(w, []):
            oracle.append(
                churn_oracle_at(world, state, records, w, as_of_ns, step=_run_week,
                                horizon_days=oracle_horizon_days, draws=oracle_draws, seed=seed)
            )  # fmt: skip
        _run_week(world, state, records, w, rng)
    sim = assemble(world, records, first_ids)
    add_names(sim.data, seed)
    if oracle:
        sim.truth.churn_oracle = pd.concat(oracle, ignore_index=True)
    return sim


@dataclass
class Run:
    """A simulation in progress: the world, its state and records, the generator every
    draw comes from and the next week to step (:func:`start_run`, :func:`step_week`)."""

    world: World
    state: State
    records: Records
    rng: np.random.Generator
    week: int = 0


# The weekly exposure step: records the week's exposures and responses and returns per
# account the number of responses to content fitting its true phase (the lever's boost).
Send = Callable[[World, State, Week, np.random.Generator, Records], np.ndarray]


def start_run(
    n_accounts: int,
    seed: int,
    *,
    start: pd.Timestamp | str = "2024-01-01",
    months: int = 24,
    taxonomy: Taxonomy | None = None,
    params: SimulationParams | None = None,
) -> Run:
    """The world of a run of ``months`` months from ``start`` and its initial state and
    records, before the first week (see :func:`simulate`, which steps it to the end)."""
    if n_accounts < 1:
        raise SimulationError(f"n_accounts must be >= 1, got {n_accounts}")
    if months < 1:
        raise SimulationError(f"months must be >= 1, got {months}")
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    p = params if params is not None else SimulationParams()
    if len(tax.phases) != N_PHASES:
        raise SimulationError(
            f"the simulator needs an 8-phase default model (trigger ... expansion), "
            f"got {len(tax.phases)}: {tax.phases}"
        )
    _check_params(p, tax)
    start_ts = to_utc(start)
    end_ts = start_ts + pd.DateOffset(months=months)
    start_ns = int(start_ts.value)
    n_weeks = int((end_ts.value - start_ns) // WEEK_NS)
    if n_weeks < 2:
        raise SimulationError(f"months={months} gives fewer than two simulated weeks")
    rng = np.random.default_rng(seed)
    world = _draw_world(n_accounts, tax, p, start_ns, int(end_ts.value), n_weeks, rng)
    state = initial_state(world, rng)
    records = initial_records(world, state, rng)
    return Run(world=world, state=state, records=records, rng=rng)


def step_week(run: Run, send: Send = exposures_and_responses) -> None:
    """Steps ``run`` through its next week; ``send`` decides the week's exposures (the
    simulator's own sender by default; a closed-loop benchmark passes the service's)."""
    if run.week >= run.world.n_weeks:
        raise SimulationError(f"the run has {run.world.n_weeks} weeks; all are stepped")
    _run_week(run.world, run.state, run.records, run.week, run.rng, send=send)
    run.week += 1


def _check_params(p: SimulationParams, tax: Taxonomy) -> None:
    """Raises SimulationError naming a parameter that does not fit the model or taxonomy:
    per-phase tuples of another length, channels or content types the taxonomy lacks."""
    for name in ("advance_hazard", "loss_hazard", "touch_rate", "initial_phase_share",
                 "response_topic_phase"):  # fmt: skip
        if len(getattr(p, name)) != N_PHASES:
            raise SimulationError(
                f"{name} needs {N_PHASES} values (one per phase), got {len(getattr(p, name))}"
            )
    if p.exposure_phase_source not in ("crm", "true"):
        raise SimulationError(
            f"exposure_phase_source must be 'crm' or 'true', got {p.exposure_phase_source!r}"
        )
    for name, known in (
        ("response_channel", tax.channel_names),
        ("anonymous_by_channel", tax.channel_names),
        ("response_content_type", tax.content_type_names),
    ):
        unknown = sorted({str(k) for k, _ in getattr(p, name)} - set(known))
        if unknown:
            raise SimulationError(f"{name} names {unknown}, which the taxonomy does not have")


def _draw_world(
    n_accounts: int,
    tax: Taxonomy,
    p: SimulationParams,
    start_ns: int,
    end_ns: int,
    n_weeks: int,
    rng: np.random.Generator,
) -> World:
    """Returns the world of a run: catalog and lookups of the taxonomy, and the accounts and
    buying centers drawn from ``rng``."""
    content_frame = tax.content_frame()
    cat = build_catalog(
        content_frame, tax.phases, tax.role_names, tax.topic_names, p.adjacent_phase_fit
    )
    accounts = draw_accounts(n_accounts, start_ns, tax, rng)
    centers = draw_buying_centers(
        accounts, tax.role_names, start_ns=start_ns, n_weeks=n_weeks, p=p, rng=rng
    )
    return World(
        params=p,
        taxonomy=tax,
        content_frame=content_frame,
        catalog=cat,
        lookups=build_lookups(tax, cat, content_frame, p),
        response=ResponseModel.build(
            ResponseModel.rows(p),
            roles=tax.role_names,
            channels=tax.channel_names,
            content_types=[str(t) for t in content_frame["content_type"]],
            n_phases=N_PHASES,
        ),
        accounts=accounts,
        centers=centers,
        start_ns=start_ns,
        end_ns=end_ns,
        n_weeks=n_weeks,
    )


def _run_week(
    world: World,
    state: State,
    records: Records,
    w: int,
    rng: np.random.Generator,
    *,
    send: Send = exposures_and_responses,
) -> None:
    """Steps the world through week ``w``: customer health and service, organic
    touchpoints, exposures and responses, churn hazards and renewals, then the phase
    changes at the next week's start (none after the last week)."""
    week = week_at(world, state, w)
    drivers = update_health(world, state, week, rng)
    service_events(world, state, week, rng, records.events)
    organic_touchpoints(world, state, week, rng, records.events)
    responded_fit = send(world, state, week, rng, records)
    state.boost = world.params.boost_decay * state.boost + responded_fit
    cust_h = churn_hazard(world, state, week, drivers, records)
    renewals(world, state, week, rng, records.events)
    if w < world.n_weeks - 1:
        transition(world, state, week, cust_h, rng, records)
