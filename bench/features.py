"""Benchmark: point-in-time features from Parquet, pandas engine (and optionally Dask).

    python -m bench.features [--data DIR] [--accounts 100000] [--dask]

Without ``--data`` it simulates ``--accounts`` accounts into ``out/bench-data-<N>`` once
and reuses that directory. Prints one JSON object: read (Parquet + validation) and feature
seconds, touchpoints per second, the number of features and the peak memory of this process;
with ``--dask`` also the Dask engine's seconds and each worker's peak memory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from bench.measure import machine, peak_rss_mb, peak_rss_since_reset_mb, reset_peak_rss
from features.schema import JourneyData


def ensure_data(data: Path | None, accounts: int, seed: int) -> Path:
    if data is not None:
        return data
    out = Path("out") / f"bench-data-{accounts}-{seed}"
    if not (out / "touchpoints.parquet").exists():
        from features.simulate import simulate, write_simulation

        write_simulation(simulate(accounts, seed), out)
    return out


def _dask_run(data: JourneyData, as_of: pd.Timestamp, expected: pd.DataFrame) -> dict[str, object]:
    """The Dask engine on a 2-worker LocalCluster: seconds, each worker's peak resident
    memory (MB, read from the workers after the run) and whether it equals ``expected``."""
    from dask.distributed import Client, LocalCluster

    from features.pipeline import build_features
    from features.taxonomy import load_taxonomy

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(reset_peak_rss)  # the workers' own peak, not their parent's
        started = time.perf_counter()
        frame = build_features(
            data, [as_of], load_taxonomy(), engine="dask", scheduler=cluster.scheduler_address
        )
        seconds = time.perf_counter() - started
        peaks = client.run(peak_rss_since_reset_mb)
    pd.testing.assert_frame_equal(frame, expected)
    return {
        "dask_2_workers_s": round(seconds, 2),
        "dask_worker_peak_rss_mb": sorted(round(v) for v in peaks.values()),
        "dask_client_peak_rss_mb": round(peak_rss_mb()),
        "dask_equals_pandas": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dask", action="store_true", help="also time the Dask engine")
    args = parser.parse_args()

    data_dir = ensure_data(args.data, args.accounts, args.seed)
    from features.load import read_data_dir
    from features.pipeline import build_features
    from features.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    baseline_mb = peak_rss_mb()
    started = time.perf_counter()
    data = read_data_dir(data_dir, taxonomy)
    read_s = time.perf_counter() - started
    as_of = data.touchpoints["ts"].max().normalize() - pd.Timedelta(days=30)

    started = time.perf_counter()
    frame = build_features(data, [as_of], taxonomy)
    features_s = time.perf_counter() - started
    n_touchpoints = len(data.touchpoints)
    result: dict[str, object] = {
        "benchmark": "features",
        "date": time.strftime("%Y-%m-%d"),
        "data": str(data_dir),
        "accounts": len(data.accounts),
        "touchpoints": n_touchpoints,
        "as_of": str(as_of.date()),
        "rows": len(frame),
        "features": frame.shape[1] - 2,
        "read_and_validate_s": round(read_s, 2),
        "features_s": round(features_s, 2),
        "total_s": round(read_s + features_s, 2),
        "touchpoints_per_s": round(n_touchpoints / (read_s + features_s)),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_mb": round(baseline_mb),
        "machine": machine(),
    }
    if args.dask:
        result.update(_dask_run(data, as_of, frame))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
