"""Benchmark: the recommendation request's one read of the store (``account_activity``:
data version, owner, served actions, dismissals, the account's and contacts' names, the last
visit and the touchpoints since), per call, on a simulated SQLite store.

    python -m bench.account_activity [--accounts 2000] [--seed 7] [--calls 500]

Half the accounts asked for had an action decided 20 days before (so the touchpoints since
are counted for them). Prints one JSON object: p50 and p99 in milliseconds, and the load
average while it ran (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import machine
from features.simulate import simulate
from features.taxonomy import load_taxonomy
from serving.store import NewRecommendation, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500, help="accounts asked for, 3 rounds")
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    data = simulate(args.accounts, args.seed, taxonomy=taxonomy).data
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'nba.db'}", taxonomy)
        store.migrate()
        store.load_data(data)
        now = data.touchpoints["ts"].max() + pd.Timedelta(days=1)
        ids = data.accounts["account_id"].astype(str).tolist()[: args.calls]
        store.log_recommendations(
            [
                NewRecommendation(
                    request_id="bench",
                    account_id=a,
                    content_id=str(data.content["content_id"].iloc[0]),
                    rank=1,
                    expected_value=0.1,
                    propensity=1.0,
                    policy="bench",
                )
                for a in ids[::2]
            ],
            served_at=now - pd.Timedelta(days=20),
        )
        week = now - pd.Timedelta(days=7)
        for a in ids[:50]:  # warm the page cache and SQLAlchemy's compiled statements
            store.account_activity(a, served_since=week, dismissed_since=week)
        times: list[float] = []
        for _ in range(3):
            for a in ids:
                start = time.perf_counter()
                store.account_activity(a, served_since=week, dismissed_since=week)
                times.append(time.perf_counter() - start)
        store.dispose()
    ms = np.array(times) * 1e3
    print(
        json.dumps(
            {
                "benchmark": "account_activity",
                "accounts": args.accounts,
                "seed": args.seed,
                "calls": len(ms),
                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
