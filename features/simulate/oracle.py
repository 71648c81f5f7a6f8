"""The churn oracle: each customer's probability of churning within a horizon given the
simulator's latent state at an as-of date, by Monte Carlo over the simulator's own weekly
dynamics.

At the start of the week containing an as-of date the run hands the state to
:func:`churn_oracle_at`, which copies it ``draws`` times and steps each copy forward over the
weeks whose churns fall in ``[as_of, as_of + horizon_days)`` with its own random stream
(seeded from the run's seed, the week and the draw), counting per account the draws in which
a churn event lands in that window. The run's own generator, state and records are not
touched, so a run with the oracle gives the same tables as one without.

This is a true upper reference: no predictor that sees only what happened before as-of can
rank or calibrate better in expectation, up to the Monte Carlo error (a standard error of at
most 0.5 / sqrt(draws) per account) and what the partial week before as-of adds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from features.simulate.columns import ids, timestamps
from features.simulate.params import CUSTOMER_PHASES, WEEK_NS, SimulationError
from features.simulate.records import Records
from features.simulate.state import State
from features.simulate.world import World
from features.timestamps import NS_PER_DAY, to_ns

# Keeps the oracle's random streams apart from any other stream seeded from the run's seed.
_ORACLE_STREAM = 0x0C4A
ORACLE_COLUMNS = ("account_id", "as_of", "horizon_days", "draws", "p_churn")

WeekStep = Callable[[World, State, Records, int, np.random.Generator], None]


def oracle_weeks(
    world: World, as_of: Sequence[pd.Timestamp | str], horizon_days: int
) -> dict[int, list[int]]:
    """The week each as-of date falls in, mapped to the as-of dates (UTC ns) of that week.

    Raises ``SimulationError`` for a date outside the run or whose horizon ends after it
    (the simulator could not step that far), and for a horizon below one day."""
    if horizon_days < 1:
        raise SimulationError(f"oracle horizon_days must be >= 1, got {horizon_days}")
    out: dict[int, list[int]] = {}
    for t in as_of:
        t_ns = to_ns(t)
        end_ns = t_ns + horizon_days * NS_PER_DAY
        if not world.start_ns <= t_ns or end_ns > world.end_ns:
            raise SimulationError(
                f"oracle_as_of {pd.Timestamp(t_ns, tz='UTC')} with horizon {horizon_days} days "
                f"does not fit the run ({pd.Timestamp(world.start_ns, tz='UTC')} .. "
                f"{pd.Timestamp(world.end_ns, tz='UTC')}); expected as-of dates whose horizon "
                "ends within the run"
            )
        out.setdefault(int((t_ns - world.start_ns) // WEEK_NS), []).append(t_ns)
    return out


def churn_oracle_at(
    world: World,
    state: State,
    records: Records,
    week: int,
    as_of_ns: int,
    *,
    step: WeekStep,
    horizon_days: int,
    draws: int,
    seed: int,
) -> pd.DataFrame:
    """Returns the oracle rows (``ORACLE_COLUMNS``) of one as-of date, given the state at the
    start of ``week`` (the week containing ``as_of_ns``); ``step`` is the run's weekly step.

    Rows are the accounts that are customers at as-of: customers in the latent state at the
    week's start, and accounts whose churn at that start is recorded at or after as-of
    (certain churners, p = 1)."""
    if draws < 1:
        raise SimulationError(f"oracle_draws must be >= 1, got {draws}")
    end_ns = as_of_ns + horizon_days * NS_PER_DAY
    # A churn decided in week w is recorded within a day of week w + 1's start; the run
    # steps no week past its last (whose churns it does not decide), nor does the oracle.
    last_week = min(int((end_ns - 1 - world.start_ns) // WEEK_NS) - 1, world.n_weeks - 1)
    churned = np.zeros(world.n_accounts)
    for k in range(draws):
        rng = np.random.default_rng([seed, _ORACLE_STREAM, week, as_of_ns, k])
        sim_state, sim_records = copy.deepcopy(state), Records()
        for w in range(week, last_week + 1):
            step(world, sim_state, sim_records, w, rng)
        acc, ts = _churn_events(world, sim_records)
        hit = np.unique(acc[(ts >= as_of_ns) & (ts < end_ns)])
        churned[hit] += 1.0
    p = churned / draws
    acc, ts = _churn_events(world, records)
    already = np.unique(acc[(ts >= as_of_ns) & (ts < end_ns)])
    p[already] = 1.0
    rows = np.union1d(np.nonzero(np.isin(state.phase, CUSTOMER_PHASES))[0], already)
    width = 6 if world.n_accounts < 10**6 else 9
    return pd.DataFrame(
        {
            "account_id": ids("A", rows + 1, width),
            "as_of": timestamps(np.full(len(rows), as_of_ns, dtype=np.int64)),
            "horizon_days": np.full(len(rows), horizon_days, dtype=np.int64),
            "draws": np.full(len(rows), draws, dtype=np.int64),
            "p_churn": p[rows],
        }
    )


def _churn_events(world: World, records: Records) -> tuple[np.ndarray, np.ndarray]:
    """Account index and time of every churn event recorded so far (the chunks stay)."""
    chunks = records.events.chunks
    et = world.lookups.codes.et_churn
    accs, times = [], []
    for acc, etype, ts in zip(chunks["acc"], chunks["etype"], chunks["ts"], strict=True):
        mine = etype == et
        if mine.any():
            accs.append(acc[mine].astype(np.int64))
            times.append(ts[mine])
    if not accs:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(accs), np.concatenate(times)
