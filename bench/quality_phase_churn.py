"""Benchmark: quality of the phase and churn models against baselines and the simulator.

    python -m bench.quality_phase_churn [--accounts 20000] [--seed 7] [--dates 12]

Simulates the accounts in memory, builds features for the monthly as-of grid once, trains
both models and prints one JSON object: every metric of model, baselines and ceiling, the
phase backtest (purchase share per predicted phase), the issue-3 targets with whether each is
met and by how much, and seconds per step.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bench.measure import peak_rss_mb

if TYPE_CHECKING:
    import pandas as pd

    from features.simulate import Simulation
    from features.taxonomy import Taxonomy
    from training.datasets import TrainingSet
    from training.result import ModelResult


def _targets(
    phase: dict[str, float], churn: dict[str, float], backtest: list[dict[str, Any]]
) -> dict[str, Any]:
    baselines = ("baseline_majority", "baseline_last_content")
    best = max(phase[f"{b}.macro_f1_true"] for b in baselines)
    f1_margin = phase["model.macro_f1_true"] - best
    auc_share = (churn["model.roc_auc"] - 0.5) / (churn["ceiling.roc_auc"] - 0.5)
    rates = {row["predicted_phase"]: row["purchase_rate"] for row in backtest}
    buying = [
        p for p in ("trigger", "awareness", "consideration", "selection", "purchase") if p in rates
    ]
    monotone = all(rates[a] < rates[b] for a, b in zip(buying, buying[1:], strict=False))
    return {
        "phase_macro_f1_true_minus_best_baseline": {
            "value": f1_margin,
            "best_baseline": best,
            "target": ">= 0.10",
            "met": f1_margin >= 0.10,
            "vs_crm_last_record": phase["model.macro_f1_true"]
            - phase["baseline_crm_last.macro_f1_true"],
        },
        "churn_auc_share_of_ceiling": {
            "value": auc_share,
            "target": ">= 0.9",
            "met": auc_share >= 0.9,
        },
        "churn_ece": {
            "value": churn["model.ece"],
            "target": "<= 0.03",
            "met": churn["model.ece"] <= 0.03,
        },
        "backtest_buying_phases_convert_increasingly": {
            "rates": {p: rates[p] for p in buying},
            "met": monotone,
        },
    }


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Yields once; records the seconds the ``with`` body took as ``seconds[step]``."""
    start = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - start


def _parse_args() -> argparse.Namespace:
    """The command line: ``accounts``, ``seed`` and ``dates`` (as-of grid size)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dates", type=int, default=12)
    return parser.parse_args()


def _model_summary(result: ModelResult, ts: TrainingSet) -> dict[str, Any]:
    """One model's part of the report: its metrics, as-of dates, rows per split and the
    iteration early stopping kept."""
    return {
        "metrics": result.metrics,
        "as_of_dates": result.as_of_dates,
        "rows": {k: len(getattr(ts.split, k)) for k in ("train", "valid", "test")},
        "best_iteration": result.params["best_iteration"],
    }


def _phase(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame, seconds: dict[str, float]
) -> dict[str, Any]:
    """The phase model's part of the report, with the backtest rows (builds the set and
    trains; timings go to ``seconds``)."""
    from training.datasets import build_phase_set
    from training.phase import backtest_phase, train_phase

    with _timed(seconds, "phase_set"):
        phase_set = build_phase_set(sim.data, taxonomy, features)
    with _timed(seconds, "phase_train"):
        phase = train_phase(phase_set, truth=sim.truth, taxonomy=taxonomy)
    backtest: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in backtest_phase(phase.estimator, phase_set).to_dict("records")
    ]
    return {**_model_summary(phase, phase_set), "backtest": backtest}


def _churn(
    sim: Simulation, taxonomy: Taxonomy, features: pd.DataFrame, seconds: dict[str, float]
) -> dict[str, Any]:
    """The churn model's part of the report, with its calibration params (builds the set
    and trains; timings go to ``seconds``)."""
    from models.outcomes import load_outcomes
    from training.outcome import train_outcome
    from training.outcome_sets import build_outcome_set, outcome_moments

    outcome = load_outcomes()[0]  # the default: churn
    with _timed(seconds, "churn_set"):
        moments = outcome_moments(sim.data, outcome, n_dates=features["as_of"].nunique())
        churn_set = build_outcome_set(sim.data, taxonomy, features, outcome, moments)
    with _timed(seconds, "churn_train"):
        churn = train_outcome(churn_set, outcome, truth=sim.truth)
    calibration = {k: churn.params[k] for k in ("calibration_a", "calibration_b")}
    return {**_model_summary(churn, churn_set), "calibration": calibration}


def main() -> None:
    """Prints the benchmark's JSON report for the command line's accounts, seed and dates."""
    args = _parse_args()
    # Imported here so that --help answers without loading the pipeline.
    from features.pipeline import build_features
    from features.simulate import simulate
    from features.taxonomy import load_taxonomy
    from training.datasets import as_of_grid

    seconds: dict[str, float] = {}
    with _timed(seconds, "simulate"):
        taxonomy = load_taxonomy()
        sim = simulate(args.accounts, args.seed)
    with _timed(seconds, "features"):
        dates = as_of_grid(sim.data, args.dates)
        features = build_features(sim.data, dates, taxonomy)
    phase = _phase(sim, taxonomy, features, seconds)
    churn = _churn(sim, taxonomy, features, seconds)
    report = {
        "accounts": args.accounts,
        "seed": args.seed,
        "as_of_dates": [d.date().isoformat() for d in dates],
        "phase": phase,
        "churn": churn,
        "targets": _targets(phase["metrics"], churn["metrics"], phase["backtest"]),
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
