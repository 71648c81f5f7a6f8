"""Benchmark: how ``nba features`` grows with the accounts, pandas engine and Dask engine.

    python -m bench.growth --data DIR [--data DIR ...] [--engines pandas,dask] [--as-of DATE]

For each data directory and engine, one ``nba features`` in a fresh process (one as-of date:
the last touchpoint's day minus 30 days, or ``--as-of``): wall and CPU seconds (user +
system, the Dask workers' included: they are the command's children) and the peak resident
memory of the largest single process, from ``wait4``; for Dask also the peak of each worker
(from the command's ``--json``) and of the client. Prints one JSON object with the load
average before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.features_vs_duckdb import default_as_of
from bench.measure import machine
from features.timestamps import to_utc


def run(command: list[str]) -> tuple[dict[str, float], dict[str, object]]:
    """Run ``command`` to the end: (wall, CPU and system seconds and peak resident MB, the
    JSON object it printed last)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), command)
        out.seek(0)
        printed = json.loads(out.read().decode().strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "system_s": round(usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }, printed


def measure(data_dir: Path, engine: str, as_of: str, work: Path) -> dict[str, object]:
    """One ``nba features`` run on ``data_dir`` with ``engine``."""
    out = work / f"features-{engine}" if engine == "dask" else work / "features.parquet"
    command = [sys.executable, "-m", "nba", "features", "--data", str(data_dir), "--as-of", as_of]
    command += ["--out", str(out), "--engine", engine, "--json"]
    load_before = os.getloadavg()
    timing, printed = run(command)
    result: dict[str, object] = {"engine": engine, **timing, "rows": printed["rows"]}
    if engine == "dask":
        workers = printed["worker_peak_memory_mb"]
        assert isinstance(workers, dict)
        result["worker_peak_rss_mb"] = sorted(round(v) for v in workers.values())
        result["client_peak_rss_mb"] = round(float(str(printed["peak_memory_mb"])))
        result["partitions"] = printed["partitions"]
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--engines", default="pandas,dask")
    parser.add_argument("--as-of", help="as-of date (default: last touchpoint's day - 30)")
    args = parser.parse_args()
    runs = []
    for data_dir in args.data:
        as_of = str((to_utc(args.as_of) if args.as_of else default_as_of(data_dir)).date())
        size = {
            t: pq.ParquetFile(data_dir / f"{t}.parquet").metadata.num_rows
            for t in ("accounts", "touchpoints", "exposures")
        }
        for engine in args.engines.split(","):
            with tempfile.TemporaryDirectory(dir=data_dir.parent) as tmp:
                runs.append(
                    {
                        "data": str(data_dir),
                        **size,
                        "as_of": as_of,
                        **measure(data_dir, engine, as_of, Path(tmp)),
                    }  # fmt: skip
                )
    result = {
        "benchmark": "growth",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
