"""Benchmark: the recommendation service under load, from a second process on loopback.

    python -m bench.serve --data out/bench-data-100000-7 --workdir out/serve-bench

Needs champion models in ``WORKDIR/mlflow.db`` (``MLFLOW_TRACKING_URI=sqlite:///WORKDIR/mlflow.db
nba train all --data DATA``). Loads DATA into ``WORKDIR/nba.db`` once, then measures:

- warm GET /v1/accounts/{id}/recommendations at a fixed offered rate (default 200/s for 60 s,
  one worker): p50/p99 latency from the scheduled send time (no coordinated omission), errors;
- the same for accounts whose caches are cold (first request after start);
- maximum sustained throughput with 2 workers (wrk, closed loop), when wrk is installed;
- POST /v1/events throughput in batches of 500 into SQLite;
- one account's churn score from ``mlflow models serve`` against ours (p50 of each).

Prints one JSON object. The load (server process, load generator, wrk, event batches) is in
``bench.serve_load``, the ``mlflow models serve`` comparison in ``bench.serve_mlflow``; this
module runs the measured parts in order (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import machine
from bench.serve_load import (
    events_throughput,
    fixed_rate_result,
    free_port,
    load_generator,
    percentiles,
    run_generator,
    server,
    wait_ready,
    wrk_max_throughput,
)
from bench.serve_mlflow import mlflow_serve_comparison

# Names of the measured parts, importable from here as before the split.
__all__ = [
    "create_key",
    "ensure_store",
    "events_throughput",
    "fixed_rate_result",
    "free_port",
    "load_generator",
    "main",
    "mlflow_serve_comparison",
    "percentiles",
    "run_generator",
    "server",
    "wait_ready",
    "wrk_max_throughput",
]


def ensure_store(data_dir: Path, url: str) -> float:
    """Load DATA into the store once; returns seconds spent (0 when already loaded)."""
    import pandas as pd

    from features.load import read_data_dir
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    taxonomy = load_taxonomy()
    store = Store(url, taxonomy)
    store.migrate()
    if store.counts().get("accounts", 0):
        return 0.0
    started = time.perf_counter()
    store.load_data(read_data_dir(data_dir, taxonomy))
    store.build_feature_states(pd.Timestamp.now(tz="UTC"))  # as nba load does
    return time.perf_counter() - started


def create_key(url: str) -> str:
    from features.taxonomy import load_taxonomy
    from serving.store import Store

    store = Store(url, load_taxonomy())
    return store.create_api_key(
        f"bench-{time.time_ns()}", ["recommendations:read", "events:write", "feedback:write"]
    )


# --------------------------------------------------------------------------------------------
# The run


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/bench-data-100000-7"))
    parser.add_argument("--workdir", type=Path, default=Path("out/serve-bench"))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--accounts", type=int, default=500, help="warm accounts to hit")
    parser.add_argument("--cold-accounts", type=int, default=300)
    parser.add_argument("--cold-rate", type=float, default=10)
    parser.add_argument(
        "--warm-up", type=int, default=60, help="seconds of wrk warming the 2 workers' caches"
    )
    return parser.parse_args()


def _sample_accounts(data: Path, n: int) -> list[str]:
    """``n`` distinct account ids of DATA, drawn with a fixed seed."""
    import pandas as pd

    accounts = pd.read_parquet(data / "accounts.parquet", columns=["account_id"])
    rng = np.random.default_rng(7)
    return [str(a) for a in rng.choice(accounts["account_id"], n, replace=False)]


def _partial(result: dict[str, Any]) -> None:
    """The results so far on stderr, in case a later step fails."""
    print(json.dumps(result), file=sys.stderr, flush=True)


def _cold_cache(base: str, key: str, cold_paths: list[str], rate: float) -> dict[str, Any]:
    """Fixed-rate GETs, each the first request for its account after start."""
    cold = run_generator(
        {"base": base, "key": key, "paths": cold_paths, "rate": rate,
         "duration_s": len(cold_paths) / rate}
    )  # fmt: skip
    return fixed_rate_result(cold, rate)


def _warm_cache(
    base: str, key: str, warm_paths: list[str], rate: float, duration_s: float
) -> dict[str, Any]:
    """Fixed-rate GETs of accounts whose caches one untimed request each has filled."""
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for path in warm_paths:
            client.get(path, timeout=30)
    warm = run_generator(
        {"base": base, "key": key, "paths": warm_paths, "rate": rate, "duration_s": duration_s}
    )
    return fixed_rate_result(warm, rate)


def _mlflow_side_measurement(
    base: str, key: str, account_id: str, tracking_uri: str
) -> dict[str, Any]:
    """:func:`mlflow_serve_comparison`, or the error it raised."""
    try:
        return mlflow_serve_comparison(base, key, account_id, tracking_uri)
    except Exception as exc:  # the comparison is a side measurement; keep the rest
        return {"error": f"{type(exc).__name__}: {exc}"}


def _two_workers(base: str, key: str, warm_paths: list[str], warm_up_s: int) -> dict[str, Any]:
    """wrk's maximum throughput against 2 workers, after a reported warm-up run."""
    # Each worker has its own cache, and the events before changed the warm accounts'
    # data: a first wrk run (reported too) computes both workers' caches, the second
    # is measured.
    return {
        "warm_up_2_workers": wrk_max_throughput(base, key, warm_paths, warm_up_s, connections=8),
        "max_throughput_2_workers": wrk_max_throughput(base, key, warm_paths, 20),
    }


def main() -> None:
    args = _parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'nba.db'}"
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    result: dict[str, Any] = {"benchmark": "serve", "date": time.strftime("%Y-%m-%d")}
    result["store_load_s"] = round(ensure_store(args.data.resolve(), db_url), 1)
    key = create_key(db_url)
    env = {
        **os.environ,
        "NBA_DATABASE_URL": db_url,
        "MLFLOW_TRACKING_URI": tracking,
        "NBA_RELOAD_INTERVAL_S": "3600",
    }
    os.environ["NBA_DATABASE_URL"] = db_url

    sample = _sample_accounts(args.data, args.accounts + args.cold_accounts)
    paths = [f"/v1/accounts/{a}/recommendations?k=5" for a in sample]
    warm_paths, cold_paths = paths[: args.accounts], paths[args.accounts :]

    log = workdir / "server.log"
    with server(env, workers=1, log=log) as base:
        result["cold_cache"] = _cold_cache(base, key, cold_paths, args.cold_rate)
        _partial(result)
        result["warm_cache_1_worker"] = _warm_cache(base, key, warm_paths, args.rate, args.duration)
        _partial(result)
        result["events_batches_of_500"] = events_throughput(base, key, sample, batches=40)
        _partial(result)
        result["mlflow_models_serve"] = _mlflow_side_measurement(base, key, sample[0], tracking)
    with server(env, workers=2, log=log) as base:
        result.update(_two_workers(base, key, warm_paths, args.warm_up))
    result["machine"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
