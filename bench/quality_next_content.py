"""Quality of the next-content model on simulated data:
``python -m bench.quality_next_content [--accounts N] [--seed S] [--data DIR]``.

Prints JSON: the model's and baselines' metrics (ROC-AUC, true policy values, off-policy
estimates, each with its 95 % interval), the policies' true values side by side, the
issue-13 targets with pass/fail (by the value and by the whole interval), and seconds per
step. Targets, against the strongest simple baseline: the model's top-1 policy gets >= 80 %
of the way from random to the oracle (the eligible item of highest true response
probability) and a gain over random >= 1.2 x the hand rule's (role fit + topic share); the
doubly robust estimate of its value is within 10 % of the true value and its 95 % interval
covers it. Every interval resamples test accounts with all their decisions.

``--data DIR`` keeps the simulated world in DIR (tables and ``truth/``, as ``nba simulate``
writes them): the first run simulates and writes it, later runs read it back instead of
simulating (the same tables and truth; the data are read and validated as ``nba train
--data`` reads them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.measure import target
from features.load import read_data_dir
from features.pipeline import build_features
from features.schema import JourneyData
from features.simulate import SimulationTruth, load_truth, simulate, write_simulation
from features.taxonomy import Taxonomy, load_taxonomy
from training.datasets import as_of_grid
from training.next_content import build_next_content_set, train_next_content

POLICIES = (
    "model",
    "baseline_random",
    "baseline_logging",
    "baseline_popular",
    "baseline_hand_rule",
    "oracle",
)


def targets(m: dict[str, float]) -> dict[str, object]:
    """The issue-13 targets of the next-content model from its metrics, each with the
    value's 95 % interval."""
    low, high = m["model.dr_value_ci_low"], m["model.dr_value_ci_high"]
    return {
        "share_of_oracle_gain": target(
            m,
            "model.share_of_oracle_gain",
            at_least=0.8,
            what="model's true value, share of the way from random to the oracle",
        ),
        "gain_over_hand_rule": target(
            m,
            "model.gain_over_hand_rule",
            at_least=1.2,
            what="model's gain over random / the hand rule's gain over random",
        ),
        "dr_relative_error": {
            "what": "|DR - true value| / true value of the model's policy",
            "value": m["model.dr_relative_error"],
            "dr": [m["model.dr_value"], low, high],
            "true_value": m["model.true_value"],
            "dr_minus_true": [
                m["model.dr_error"],
                m["model.dr_error_ci_low"],
                m["model.dr_error_ci_high"],
            ],
            "target": "<= 0.1 and the DR interval covers the true value",
            "interval_covers_truth": bool(m["model.dr_covers_truth"] == 1.0),
            "met": bool(m["model.dr_relative_error"] <= 0.1 and m["model.dr_covers_truth"] == 1.0),
        },
        "lift_over_logging": target(
            m,
            "model.lift_over_logging",
            at_least=1.2,
            what="model's true value / the logging policy's (issue 3)",
        ),
    }


def simulated_world(
    accounts: int, seed: int, taxonomy: Taxonomy, data_dir: Path | None
) -> tuple[JourneyData, SimulationTruth]:
    """The simulated tables and truth: simulated now without ``data_dir``; else read from
    it, after simulating and writing them there when it holds no truth yet."""
    if data_dir is None:
        sim = simulate(accounts, seed, taxonomy=taxonomy)
        return sim.data, sim.truth
    if not (data_dir / "truth").is_dir():
        write_simulation(simulate(accounts, seed, taxonomy=taxonomy), data_dir)
    return read_data_dir(data_dir, taxonomy), load_truth(data_dir)


def run(
    accounts: int, seed: int, n_dates: int = 12, *, data_dir: Path | None = None
) -> dict[str, object]:
    """Simulate (or read ``data_dir``), build features on the as-of grid, build the set,
    train and evaluate."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    taxonomy = load_taxonomy()
    data, truth = simulated_world(accounts, seed, taxonomy, data_dir)
    seconds["simulate_or_read"] = time.perf_counter() - t
    t = time.perf_counter()
    grid = as_of_grid(data, n_dates=n_dates)
    features = build_features(data, grid, taxonomy)
    seconds["features"] = time.perf_counter() - t
    t = time.perf_counter()
    ts = build_next_content_set(data, taxonomy, features)
    seconds["training_set"] = time.perf_counter() - t
    t = time.perf_counter()
    result = train_next_content(ts, truth=truth, taxonomy=taxonomy, content=data.content)
    seconds["train_and_evaluate"] = time.perf_counter() - t
    m = result.metrics
    return {
        "accounts": len(data.accounts),
        "seed": seed,
        "data": str(data_dir) if data_dir is not None else None,
        "true_values": {
            who: [m[f"{who}.true_value{s}"] for s in ("", "_ci_low", "_ci_high")]
            for who in POLICIES
        },
        "targets": targets(m),
        "rows": {name: len(getattr(ts.split, name)) for name in ("train", "valid", "test")},
        "as_of_dates": result.as_of_dates,
        "metrics": {k: round(v, 5) for k, v in sorted(m.items())},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dates", type=int, default=12)
    parser.add_argument(
        "--data",
        type=Path,
        help="directory to keep the simulated world in (simulated and written when it has "
        "no truth/ yet, read back otherwise; --accounts and --seed then only name it)",
    )
    args = parser.parse_args()
    print(json.dumps(run(args.accounts, args.seed, args.dates, data_dir=args.data), indent=2))


if __name__ == "__main__":
    main()
