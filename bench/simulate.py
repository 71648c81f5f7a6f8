"""Benchmark the journey simulator: ``python -m bench.simulate [--accounts N] [--seed S]``.

Prints JSON: accounts, touchpoints, seconds (simulate), write_seconds (Parquet incl. truth,
only with --write), peak_rss_mb (process peak resident memory), touchpoints_per_s, machine.
The target (issue 2): 100,000 accounts, ~10M touchpoints, <= 180 s and <= 6 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.measure import machine, peak_rss_mb
from features.simulate import simulate, write_simulation


def run(accounts: int, seed: int, months: int, write: bool) -> dict[str, object]:
    """Run one simulation and return the measurements."""
    started = time.perf_counter()
    sim = simulate(accounts, seed, months=months)
    seconds = time.perf_counter() - started
    n_touch = len(sim.data.touchpoints)
    result: dict[str, object] = {
        "accounts": accounts,
        "months": months,
        "touchpoints": n_touch,
        "exposures": len(sim.data.exposures),
        "contacts": len(sim.data.contacts),
        "stages": len(sim.data.stages),
        "seconds": round(seconds, 2),
        "touchpoints_per_s": round(n_touch / seconds),
    }
    if write:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            write_simulation(sim, Path(tmp) / "data")
            result["write_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["machine"] = machine()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument(
        "--write", action="store_true", help="also time writing the Parquet data directory"
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args.accounts, args.seed, args.months, args.write), indent=2))


if __name__ == "__main__":
    main()
