"""Benchmark: `nba train all` end to end, broken down by step, with peak memory.

    python -m bench.train [--accounts 100000] [--seed 7] [--data DIR]

Simulates (or reuses) a data directory, then runs exactly what `nba train all` runs (read
and validate, features on the as-of grid, three training sets, three models, MLflow logging
into a fresh SQLite store) and prints one JSON object with wall and CPU seconds per step,
peak memory and each model's primary metric.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.features import ensure_data
from bench.measure import machine, peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of-dates", type=int, default=12)
    args = parser.parse_args()

    data_dir = ensure_data(args.data, args.accounts, args.seed).resolve()
    from features.taxonomy import load_taxonomy
    from training.result import MODEL_NAMES
    from training.tracking import configure_tracking, log_result
    from training.train import prepare, train_models

    taxonomy = load_taxonomy()
    started, started_cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.chdir(tmp)
        configure_tracking(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        prepared = prepare(data_dir, taxonomy, n_dates=args.as_of_dates)
        results = train_models(
            list(MODEL_NAMES), prepared, taxonomy, on_result=lambda r: log_result(r)
        )
    total = time.perf_counter() - started
    total_cpu = time.process_time() - started_cpu
    print(
        json.dumps(
            {
                "benchmark": "train_all",
                "date": time.strftime("%Y-%m-%d"),
                "data": str(data_dir),
                "accounts": len(prepared.data.accounts),
                "touchpoints": len(prepared.data.touchpoints),
                "as_of_dates": len(prepared.as_of),
                # every model's grid dates, computed once
                "feature_rows": prepared.feature_rows,
                "seconds": {k: round(v, 1) for k, v in prepared.seconds.items()},
                "total_s": round(total, 1),
                # CPU seconds of every thread: steadier than wall time on a shared machine.
                "cpu_seconds": {k: round(v, 1) for k, v in prepared.cpu_seconds.items()},
                "total_cpu_s": round(total_cpu, 1),
                "peak_rss_mb": round(peak_rss_mb()),
                # each with its 95 % interval where the model reports one
                "primary_metrics": {
                    r.name: {
                        name: round(r.metrics[name], 4)
                        for name in (
                            r.primary_metric,
                            f"{r.primary_metric}_ci_low",
                            f"{r.primary_metric}_ci_high",
                        )
                        if name in r.metrics
                    }
                    for r in results
                },
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
