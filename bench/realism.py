"""The realism table: ``python -m bench.realism [--accounts N] [--seed S ...] [--profile P]``.

Simulates one world per seed and prints, per quantity of
``features.simulate.realism`` (definitions there), the simulated value per seed beside the
published range and its source, as a Markdown table (docs/realism.md holds the latest), then
one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import math

import pandas as pd

from features.simulate import SimulationParams, simulate
from features.simulate.params import PROFILES
from features.simulate.realism import PUBLISHED, measure, response_rates


def markdown(by_seed: dict[int, dict[str, float]]) -> str:
    """The realism table: quantity | simulated per seed | published range | inside | source."""
    seeds = list(by_seed)
    head = "| quantity | " + " | ".join(f"seed {s}" for s in seeds)
    lines = [
        head + " | published | inside | source |",
        "|---|" + "---:|" * len(seeds) + "---|---|---|",
    ]
    for name in next(iter(by_seed.values())):
        values = [by_seed[s][name] for s in seeds]
        pub = PUBLISHED.get(name)
        inside = (
            ""
            if pub is None
            else ("yes" if all(pub.low <= v <= pub.high for v in values) else "**no**")
        )
        cells = " | ".join("" if math.isnan(v) else f"{v:.3g}" for v in values)
        rng = "" if pub is None else f"{pub.low:g}-{pub.high:g}"
        lines.append(f"| {name} | {cells} | {rng} | {inside} | {pub.source if pub else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, action="append", dest="seeds")
    parser.add_argument("--profile", choices=PROFILES, default="realistic")
    args = parser.parse_args(argv)
    params = SimulationParams.profile(args.profile)
    by_seed, rates = {}, []
    for seed in args.seeds or [7, 20261125]:
        sim = simulate(args.accounts, seed, params=params)
        by_seed[seed] = measure(sim)
        rates.append(response_rates(sim).assign(seed=seed))
    print(markdown(by_seed))
    table = pd.concat(rates).pivot_table(
        index=["by", "name"], columns="seed", values="response_rate", sort=False
    )
    print("\nresponse rate by channel and content type\n")
    print("| by | name | " + " | ".join(f"seed {s}" for s in table.columns) + " |")
    print("|---|---|" + "---:|" * len(table.columns))
    for key, row in zip(table.index, table.to_numpy(), strict=True):
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    print(json.dumps({"accounts": args.accounts, "profile": args.profile, "by_seed": by_seed}))


if __name__ == "__main__":
    main()
