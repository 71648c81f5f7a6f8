"""The churn oracle: Monte Carlo over the simulator's own dynamics from the latent state at
as-of, opt-in and without disturbing the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.simulate import (
    Simulation,
    SimulationError,
    load_truth,
    simulate,
    true_churn_probability,
)
from features.simulate.params import SimulationParams
from features.simulate.truth import oracle_churn_probability, true_phases
from nba.cli import app

AS_OF = [pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")]


# The oracle's mechanics on the legacy world: 1,200 realistic accounts hold about 20 churns
# within the horizons, too few to check calibration (the realistic world needs ~5x more
# accounts, and each oracle draw re-runs the weeks).
LEGACY = SimulationParams.profile("legacy")


@pytest.fixture(scope="module")
def plain() -> Simulation:
    return simulate(1200, 5, params=LEGACY)


@pytest.fixture(scope="module")
def with_oracle() -> Simulation:
    return simulate(1200, 5, oracle_as_of=AS_OF, oracle_draws=40, params=LEGACY)


def _churned(sim: Simulation, table: pd.DataFrame, horizon_days: int = 90) -> np.ndarray:
    """1 where the account of each row has a churn event in [as_of, as_of + horizon)."""
    tp = sim.data.touchpoints
    churn = tp.loc[tp["event_type"] == "churn", ["account_id", "ts"]]
    joined = table[["account_id", "as_of"]].reset_index().merge(churn, on="account_id", how="left")
    hit = (joined["ts"] >= joined["as_of"]) & (
        joined["ts"] < joined["as_of"] + pd.Timedelta(days=horizon_days)
    )
    return hit.groupby(joined["index"]).any().reindex(table.index).to_numpy(dtype=float)


def test_the_oracle_leaves_the_run_unchanged_and_is_empty_unless_asked(
    plain: Simulation, with_oracle: Simulation
) -> None:
    for name, frame in plain.data.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(with_oracle.data, name), obj=name)
    assert plain.truth.churn_oracle.empty
    assert list(plain.truth.churn_oracle.columns) == list(with_oracle.truth.churn_oracle.columns)


def test_oracle_rows_are_the_customers_at_as_of_with_probabilities(
    with_oracle: Simulation,
) -> None:
    table = with_oracle.truth.churn_oracle
    assert set(table["as_of"]) == set(AS_OF)
    assert (table["draws"] == 40).all() and (table["horizon_days"] == 90).all()
    assert table["p_churn"].between(0, 1).all()
    assert not table.duplicated(["account_id", "as_of"]).any()
    # customers at as-of, or accounts whose churn at the week's start is recorded after as-of
    # (2025-06-02 is a week start: those are certain, p = 1)
    phase = true_phases(with_oracle.truth, table["account_id"], table["as_of"])
    customer = phase.isin(["onboarding", "impact", "expansion"]).to_numpy()
    certain = table["p_churn"].to_numpy() == 1.0
    assert (customer | certain).all()
    assert (~customer).sum() > 0


def test_the_oracle_is_calibrated_where_the_held_hazard_under_predicts(
    with_oracle: Simulation,
) -> None:
    table = with_oracle.truth.churn_oracle
    churned = _churned(with_oracle, table)
    rate, n = churned.mean(), len(churned)
    assert churned.sum() > 40
    # the realised churn rate agrees with the oracle's mean within 3 standard errors
    assert abs(table["p_churn"].mean() - rate) < 3 * np.sqrt(rate * (1 - rate) / n)
    held = true_churn_probability(with_oracle.truth, AS_OF, horizon_days=90)
    assert held["p_churn"].mean() < table["p_churn"].mean()


def test_rows_read_the_oracle_and_unknown_dates_give_none(with_oracle: Simulation) -> None:
    table = with_oracle.truth.churn_oracle
    rows = pd.DataFrame(
        {
            "account_id": [table["account_id"].iloc[0], "NOT-A-CUSTOMER"],
            "as_of": [table["as_of"].iloc[0]] * 2,
        }
    )
    p = oracle_churn_probability(with_oracle.truth, rows, 90)
    assert p is not None
    assert p.tolist() == [table["p_churn"].iloc[0], 0.0]
    assert oracle_churn_probability(with_oracle.truth, rows, 30) is None
    other = rows.assign(as_of=pd.Timestamp("2025-04-01", tz="UTC"))
    assert oracle_churn_probability(with_oracle.truth, other, 90) is None


def test_dates_whose_horizon_leaves_the_run_are_refused() -> None:
    with pytest.raises(SimulationError, match="oracle_as_of 2025-12-01.*does not fit the run"):
        simulate(50, 1, oracle_as_of=["2025-12-01"], oracle_draws=2)
    with pytest.raises(SimulationError, match="oracle_draws must be >= 1"):
        simulate(50, 1, oracle_as_of=["2025-01-01"], oracle_draws=0)


def test_nba_simulate_writes_the_oracle_that_load_truth_reads(tmp_path: Path) -> None:
    out = tmp_path / "data"
    args = ["simulate", "--accounts", "60", "--months", "6", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--oracle-as-of", "2024-03-01", "--oracle-draws", "3"])
    assert result.exit_code == 0, result.output
    table = load_truth(out).churn_oracle
    assert set(table["as_of"]) == {pd.Timestamp("2024-03-01", tz="UTC")}
    assert (table["draws"] == 3).all()
    # a truth directory written before the oracle existed reads as no oracle
    (out / "truth" / "churn_oracle.parquet").unlink()
    assert load_truth(out).churn_oracle.empty
    late = CliRunner().invoke(app, [*args, "--oracle-as-of", "2024-06-15"])
    assert late.exit_code == 2
    assert "does not fit the run" in late.output
