"""What the logged decisions vary in: ``python -m bench.logged_contrast [--accounts 600]
[--months 12] [--seed 7 ...] [--profile realistic] [--world KEY=VALUE ...]``.

A next-content model learns what drives a response only from logged exposures that differ
in it. This simulates the world's own sender (the logging policy whose exposures make the
history every model first learns from) and prints one JSON object: per seed the exposures
of a content item, the share of them that fit the account's true phase at the time (the
response model's largest term), and the mean true response probability of those that fit
and of those that do not. ``--world`` takes the closed loop's overrides
(``bench.loop_world.world_params``), e.g. a CRM that records the true phase at once: the
sender then sends only items of the true phase, and the history holds no contrast in it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from bench.loop_world import world_params
from features.simulate import Simulation, simulate
from features.simulate.params import PROFILES
from features.simulate.truth import true_phases, true_response_probability


def phase_contrast(sim: Simulation) -> dict[str, Any]:
    """The sender's exposures of an item, the share fitting the account's true phase and
    the mean true response probability of those that fit and those that do not (None
    when a side is empty)."""
    exposures = sim.data.exposures.dropna(subset=["content_id"]).reset_index(drop=True)
    phase = true_phases(sim.truth, exposures["account_id"], exposures["ts"]).astype(object)
    items = sim.truth.content[["content_id", "phases"]].explode("phases")
    fitting = set(zip(items["content_id"].astype(str), items["phases"].astype(str), strict=True))
    fits = np.array(
        [
            (c, p) in fitting
            for c, p in zip(exposures["content_id"].astype(str), phase.astype(str), strict=True)
        ],
        dtype=bool,
    )
    request = exposures[["account_id", "contact_id", "content_id", "ts", "channel"]]
    p = true_response_probability(sim.truth, request)

    def mean(mask: np.ndarray) -> float | None:
        return round(float(p[mask].mean()), 4) if mask.any() else None

    return {
        "exposures": len(exposures),
        "fit_true_phase_share": round(float(fits.mean()), 4) if len(fits) else None,
        "true_response_if_fit": mean(fits),
        "true_response_if_not": mean(~fits),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=600)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, action="append", dest="seeds")
    parser.add_argument("--profile", choices=PROFILES, default="realistic")
    parser.add_argument("--world", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    params = world_params(args.profile, args.world)
    by_seed = {
        seed: phase_contrast(simulate(args.accounts, seed, months=args.months, params=params))
        for seed in args.seeds or [7, 8]
    }
    print(
        json.dumps(
            {
                "benchmark": "logged_contrast",
                "accounts": args.accounts,
                "months": args.months,
                "profile": args.profile,
                "world": args.world,
                "by_seed": by_seed,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
