"""Quality of the next-content model on simulated data:
``python -m bench.quality_next_content [--accounts N] [--seed S]``.

Prints JSON: the model's and baselines' metrics (ROC-AUC, true policy values, off-policy
estimates), the issue-3 targets with pass/fail, and seconds per step. Targets (20,000
accounts, seed 7): model true value >= 1.2 x the logging policy's and >= 80 % of the way
from random to the oracle; doubly robust estimate within 10 % of the true value.
"""

from __future__ import annotations

import argparse
import json
import time

from features.pipeline import build_features
from features.simulate import simulate
from features.taxonomy import load_taxonomy
from training.datasets import as_of_grid
from training.next_content import build_next_content_set, train_next_content


def run(accounts: int, seed: int, n_dates: int = 12) -> dict[str, object]:
    """Simulate, build features on the as-of grid, build the set, train and evaluate."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    taxonomy = load_taxonomy()
    sim = simulate(accounts, seed, taxonomy=taxonomy)
    seconds["simulate"] = time.perf_counter() - t
    t = time.perf_counter()
    grid = as_of_grid(sim.data, n_dates=n_dates)
    features = build_features(sim.data, grid, taxonomy)
    seconds["features"] = time.perf_counter() - t
    t = time.perf_counter()
    ts = build_next_content_set(sim.data, taxonomy, features)
    seconds["training_set"] = time.perf_counter() - t
    t = time.perf_counter()
    result = train_next_content(ts, truth=sim.truth, taxonomy=taxonomy, content=sim.data.content)
    seconds["train_and_evaluate"] = time.perf_counter() - t
    m = result.metrics
    targets = {
        "lift_over_logging>=1.2": m["model.lift_over_logging"] >= 1.2,
        "share_of_oracle_gain>=0.8": m["model.share_of_oracle_gain"] >= 0.8,
        "dr_relative_error<=0.1": m["model.dr_relative_error"] <= 0.1,
    }
    return {
        "accounts": accounts,
        "seed": seed,
        "rows": {name: len(getattr(ts.split, name)) for name in ("train", "valid", "test")},
        "as_of_dates": result.as_of_dates,
        "metrics": {k: round(v, 5) for k, v in sorted(m.items())},
        "targets": targets,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dates", type=int, default=12)
    args = parser.parse_args()
    print(json.dumps(run(args.accounts, args.seed, args.dates), indent=2))


if __name__ == "__main__":
    main()
