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
from typing import Any

from bench.measure import peak_rss_mb


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dates", type=int, default=12)
    args = parser.parse_args()

    from features.pipeline import build_features
    from features.simulate import simulate
    from features.taxonomy import load_taxonomy
    from training.churn import train_churn
    from training.datasets import as_of_grid, build_churn_set, build_phase_set
    from training.phase import backtest_phase, train_phase

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    taxonomy = load_taxonomy()
    sim = simulate(args.accounts, args.seed)
    seconds["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    dates = as_of_grid(sim.data, args.dates)
    features = build_features(sim.data, dates, taxonomy)
    seconds["features"] = time.perf_counter() - t

    t = time.perf_counter()
    phase_set = build_phase_set(sim.data, taxonomy, features)
    seconds["phase_set"] = time.perf_counter() - t
    t = time.perf_counter()
    phase = train_phase(phase_set, truth=sim.truth, taxonomy=taxonomy)
    seconds["phase_train"] = time.perf_counter() - t
    backtest: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in backtest_phase(phase.estimator, phase_set).to_dict("records")
    ]

    t = time.perf_counter()
    churn_set = build_churn_set(sim.data, taxonomy, features)
    seconds["churn_set"] = time.perf_counter() - t
    t = time.perf_counter()
    churn = train_churn(churn_set, truth=sim.truth, taxonomy=taxonomy)
    seconds["churn_train"] = time.perf_counter() - t

    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "seed": args.seed,
                "as_of_dates": [d.date().isoformat() for d in dates],
                "phase": {
                    "metrics": phase.metrics,
                    "as_of_dates": phase.as_of_dates,
                    "rows": {
                        k: len(getattr(phase_set.split, k)) for k in ("train", "valid", "test")
                    },
                    "best_iteration": phase.params["best_iteration"],
                    "backtest": backtest,
                },
                "churn": {
                    "metrics": churn.metrics,
                    "as_of_dates": churn.as_of_dates,
                    "rows": {
                        k: len(getattr(churn_set.split, k)) for k in ("train", "valid", "test")
                    },
                    "best_iteration": churn.params["best_iteration"],
                    "calibration": {k: churn.params[k] for k in ("calibration_a", "calibration_b")},
                },
                "targets": _targets(phase.metrics, churn.metrics, backtest),
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
            },
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
