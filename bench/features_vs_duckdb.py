"""Benchmark: ``nba features`` side by side with the DuckDB yardstick (``bench.duckdb_features``).

    python -m bench.features_vs_duckdb [--data DIR | --accounts 100000 --seed 7] [--repeats 3]

Each repeat runs both as separate processes from the same Parquet files, one as-of date
(the last touchpoint's day minus 30 days), alternating which goes first: ``nba features``
(read, validation, all features, Parquet out) and a process that imports only DuckDB and
runs the yardstick's ``COPY`` (345 vocabulary features, no validation, Parquet out). Prints
one JSON object: per side the median wall and CPU seconds (user + system) and peak resident
memory of its process, the ratios ours/DuckDB (below 1: we are faster), whether the two
outputs' vocabulary features are equal, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bench.duckdb_features import copy_sql, vocabulary_differences
from bench.features import ensure_data
from bench.measure import machine
from features.taxonomy import load_taxonomy
from features.timestamps import to_utc

_DUCKDB_RUNNER = (
    "import sys, duckdb\n"
    "con = duckdb.connect()\n"
    "con.execute('SET enable_progress_bar = false')\n"
    "con.execute(open(sys.argv[1]).read())\n"
)


def timed(command: list[str]) -> dict[str, float]:
    """Run ``command`` to the end; its wall and CPU seconds and peak resident MB (of that
    process alone, from ``wait4``). Raises CalledProcessError if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "system_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def default_as_of(data_dir: Path) -> pd.Timestamp:
    """The last touchpoint's day minus 30 days (as ``bench.features``), from the Parquet
    statistics alone."""
    meta = pq.ParquetFile(data_dir / "touchpoints.parquet").metadata
    column = meta.schema.to_arrow_schema().get_field_index("ts")
    last = max(meta.row_group(i).column(column).statistics.max for i in range(meta.num_row_groups))
    return to_utc(last).normalize() - pd.Timedelta(days=30)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


def compare(data_dir: Path, as_of: pd.Timestamp, repeats: int, work: Path) -> dict[str, object]:
    """The side-by-side measurements (see the module docstring)."""
    ours_out, duck_out, sql_file = work / "ours.parquet", work / "duckdb.parquet", work / "q.sql"
    sql_file.write_text(copy_sql(data_dir, as_of, load_taxonomy(), duck_out))
    ours_cmd = [sys.executable, "-m", "nba", "features", "--data", str(data_dir)]
    ours_cmd += ["--as-of", str(as_of.date()), "--out", str(ours_out)]
    duck_cmd = [sys.executable, "-c", _DUCKDB_RUNNER, str(sql_file)]
    ours: list[dict[str, float]] = []
    duck: list[dict[str, float]] = []
    load_before = os.getloadavg()
    for i in range(repeats):
        if i % 2 == 0:
            ours.append(timed(ours_cmd))
            duck.append(timed(duck_cmd))
        else:
            duck.append(timed(duck_cmd))
            ours.append(timed(ours_cmd))
    load_after = os.getloadavg()
    ours_m, duck_m = _median(ours), _median(duck)
    differ = vocabulary_differences(pd.read_parquet(ours_out), pd.read_parquet(duck_out))
    return {
        "nba_features": ours_m,
        "duckdb": duck_m,
        "ratio_wall": round(ours_m["wall_s"] / duck_m["wall_s"], 2),
        "ratio_cpu": round(ours_m["cpu_s"] / duck_m["cpu_s"], 2),
        "ratio_peak_rss": round(ours_m["peak_rss_mb"] / duck_m["peak_rss_mb"], 2),
        "runs": {
            "nba_features": [{k: round(v, 2) for k, v in r.items()} for r in ours],
            "duckdb": [{k: round(v, 2) for k, v in r.items()} for r in duck],
        },
        "vocabulary_features_equal": not differ,
        "vocabulary_features_differing": differ,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", help="as-of date (default: last touchpoint's day - 30)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data_dir = ensure_data(args.data, args.accounts, args.seed)
    as_of = to_utc(args.as_of) if args.as_of else default_as_of(data_dir)
    meta = pq.ParquetFile(data_dir / "touchpoints.parquet").metadata
    with tempfile.TemporaryDirectory() as tmp:
        measured = compare(data_dir, as_of, args.repeats, Path(tmp))
    result = {
        "benchmark": "features_vs_duckdb",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data": str(data_dir),
        "accounts": pq.ParquetFile(data_dir / "accounts.parquet").metadata.num_rows,
        "touchpoints": meta.num_rows,
        "as_of": str(as_of.date()),
        "repeats": args.repeats,
        **measured,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
