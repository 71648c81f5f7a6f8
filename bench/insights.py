"""Benchmark ``nba insights``: ``python -m bench.insights --data DIR [--from D --to D]
[--every month|week] [--runs 1]``.

Runs the command as a user does (a fresh process per run: read and validate the data
directory, compute, write the HTML report with plots, JSON and CSV) and prints JSON: its
wall time, the read / compute / write seconds and the peak memory the command reports, the
data's size, the load average before each run, and the machine. The 100,000-account data
comes from ``nba simulate --accounts 100000 --seed 7 --out DIR``; wrap a run that large in
``flock /tmp/nba-heavy.lock``.
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

from bench.measure import machine


def run_once(data: Path, out: Path, extra: list[str]) -> dict[str, object]:
    """One ``nba insights --json`` run: its wall time and what it reports."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nba",
            "insights",
            "--data",
            str(data),
            "--out",
            str(out),
            "--json",
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "wall_seconds": round(wall, 2),
        "read_seconds": summary["read_seconds"],
        "compute_seconds": summary["compute_seconds"],
        "write_seconds": summary["write_seconds"],
        "peak_memory_mb": summary["peak_memory_mb"],
        "load_average_before": round(load, 2),
        "period": summary["period"],
        "touchpoints_in_period": summary["kpis"]["touchpoints"],
        "exposures_in_period": summary["kpis"]["exposures"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--from", dest="start")
    parser.add_argument("--to", dest="end")
    parser.add_argument("--every", default="month")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    extra = ["--every", args.every]
    extra += ["--from", args.start] if args.start else []
    extra += ["--to", args.end] if args.end else []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_once(args.data, Path(tmp) / f"run{i}", extra) for i in range(args.runs)]
    print(
        json.dumps(
            {"benchmark": "insights", "data": str(args.data), "runs": runs, "machine": machine()}
        )
    )


if __name__ == "__main__":
    main()
