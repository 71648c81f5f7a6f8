"""The Dask engine on data too large for one process: workers read, validate and compute
account ranges of a Parquet data directory and write their features themselves.

:func:`~features.pipeline.dask_engine.build_features_dask` starts from tables in the
client's memory, which at a million accounts (100M touchpoints) no single process holds.
Here the client reads only the accounts' ids, cuts them into ``npartitions`` ranges of equal
size, and each task, on a worker, reads the rows of its range from every table (Parquet
predicate pushdown: a file whose row groups hold few account ranges each, as the chunked
simulator writes them, is read only where the range lies), validates them
(``features.validate.validate_tables``), runs the same
:func:`~features.pipeline.compute.compute_features` and writes ``OUT/part-<i>.parquet``.
Nothing larger than a summary returns to the client.

Validation is per range (a touchpoint or exposure may only name a contact of an account in
its own range; row numbers in problems count within the range), except for the ids that
must be unique over the whole table: an id that two ranges share (a contact, event or
exposure id given to rows of different accounts) is found by one DuckDB query per table over
the Parquet files (:func:`cross_range_duplicates`, row numbers in the file), run by the
client while the workers validate their ranges.
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.files import find_table_file
from features.pipeline.compute import compute_features
from features.pipeline.dask_engine import dask_client
from features.pipeline.specs import FeatureError
from features.problems import DataValidationError, Problem, ValidationReport
from features.schema import TABLE_ORDER, TABLES, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_utc
from features.validate import validate_tables

# Accounts per partition by default: about 1.5 GB of a worker's memory at the simulator's
# 110 touchpoints and 55 exposures per account (the pandas engine holds ~29 MB per 1,000).
ACCOUNTS_PER_PARTITION = 50_000
# DuckDB's memory for the whole-table id check (it spills beyond it).
CHECK_MEMORY = "1GB"


@dataclass
class DaskFilesResult:
    """What :func:`write_features_dask` wrote: rows, the feature columns, those with more
    than one value over all parts, rows read per table, and each task's worker peak memory
    (MB, the worker process's peak so far when the task ended)."""

    rows: int = 0
    features: list[str] = field(default_factory=list)
    not_constant: set[str] = field(default_factory=set)
    rows_in: dict[str, int] = field(default_factory=dict)
    worker_peak_mb: dict[str, float] = field(default_factory=dict)
    partitions: int = 0


def account_ranges(data_dir: Path, npartitions: int) -> list[tuple[str | None, str | None]]:
    """``npartitions`` half-open ranges [lo, hi) of account ids with as many accounts each
    (the first open below, the last above, so every row falls in exactly one)."""
    path = _parquet(data_dir, "accounts")
    ids = pq.read_table(path, columns=["account_id"]).column("account_id")
    unique = pc.unique(ids.drop_null())
    distinct = pc.sort_indices(unique)
    ordered = pc.take(unique, distinct).to_pylist()
    n = max(1, min(npartitions, len(ordered)))
    cuts = [ordered[(i * len(ordered)) // n] for i in range(1, n)]
    bounds: list[str | None] = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _parquet(data_dir: Path, table: str) -> Path:
    path = find_table_file(data_dir, table)
    if path is None or path.suffix != ".parquet":
        raise FeatureError(
            f"the Dask engine reads Parquet data directories; {table} is "
            f"{'missing' if path is None else path.name} in {data_dir}"
        )
    return path


def _in_range(lo: str | None, hi: str | None) -> pc.Expression:
    account = pc.field("account_id")
    keep = account.is_valid()
    if lo is not None:
        keep = keep & (account >= lo)
    if hi is not None:
        keep = keep & (account < hi)
    # Rows without an account go to the first range, where validation reports them.
    return keep if lo is not None else keep | account.is_null()


def peak_mb() -> float:
    """This process's peak resident memory so far, MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def read_range(
    data_dir: Path,
    lo: str | None,
    hi: str | None,
    taxonomy: Taxonomy,
    now: pd.Timestamp | None = None,
) -> tuple[JourneyData | None, ValidationReport]:
    """The validated tables of the accounts in [``lo``, ``hi``) of a Parquet data directory
    (the whole catalog), or None and the report of their problems."""
    where = _in_range(lo, hi)
    raw: dict[str, pd.DataFrame] = {}
    for table in TABLE_ORDER:
        path = find_table_file(data_dir, table)
        if path is None:
            continue  # validation reports a missing required table, as for one process
        raw[table] = pd.read_parquet(path, filters=None if table == "content" else where)
    data, report = validate_tables(raw, taxonomy, now=now)
    del raw
    pa.default_memory_pool().release_unused()
    return data, report


def reads_in_ranges(data_dir: Path) -> bool:
    """Whether the workers can read ``data_dir`` per account range: every table file it
    holds is Parquet (CSV has no row groups to prune)."""
    found = [find_table_file(Path(data_dir), t) for t in TABLE_ORDER]
    present = [p for p in found if p is not None]
    return bool(present) and all(p.suffix == ".parquet" for p in present)


def read_catalog(data_dir: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """The data directory's validated content table (the catalog) without any account's
    rows: the empty range ["", "") of :func:`read_range`, which reads the catalog whole."""
    data, report = read_range(Path(data_dir), "", "", taxonomy)
    if data is None:
        raise DataValidationError(report)
    return data.content


def raise_range_problems(parts: Sequence[dict[str, Any]], shared: list[Problem]) -> None:
    """Raises DataValidationError with the ids ranges share (``shared``) and each range's
    problems (a task's ``problems`` key; row numbers counted within its range)."""
    problems: list[Problem] = list(shared)
    for i, part in enumerate(parts):
        problems += [
            replace(p, message=f"{p.message} (account range {i}, rows counted within it)")
            for p in part.get("problems", [])
        ]
    if problems:
        lengths: dict[str, int] = {}
        for part in parts:
            for table, n in part.get("lengths", part.get("rows_in", {})).items():
                lengths[table] = lengths.get(table, 0) + n
        raise DataValidationError(ValidationReport(problems, lengths, []))


def _partition(
    data_dir: str,
    lo: str | None,
    hi: str | None,
    out_path: str,
    as_of: list[pd.Timestamp],
    taxonomy: Taxonomy,
    now: pd.Timestamp | None,
) -> dict[str, Any]:
    """One task: read, validate, compute and write one account range (see the module
    docstring); returns its summary or its validation problems."""
    data, report = read_range(Path(data_dir), lo, hi, taxonomy, now)
    if data is None:
        return {"problems": report.problems, "lengths": report.row_counts, "notes": report.notes}
    frame = compute_features(data, as_of, taxonomy)
    rows_in = {name: len(t) for name, t in data.tables().items()}
    del data
    frame.to_parquet(out_path, index=False)
    built = frame.drop(columns=["account_id", "as_of"])
    distinct = built.nunique(dropna=False)
    first = built.iloc[0] if len(built) else pd.Series(dtype=object)
    return {
        "rows": len(frame),
        "features": list(built.columns),
        "distinct": {c: int(distinct[c]) for c in built.columns},
        "first": {c: first[c] for c in first.index},
        "rows_in": rows_in,
        "peak_mb": round(peak_mb(), 1),
    }


def write_features_dask(
    data_dir: Path,
    as_of: Sequence[pd.Timestamp],
    taxonomy: Taxonomy,
    out_dir: Path,
    *,
    scheduler: str | None = None,
    npartitions: int | None = None,
    now: pd.Timestamp | None = None,
) -> DaskFilesResult:
    """Features of every account of the Parquet directory ``data_dir`` at each ``as_of``,
    written by the workers as ``out_dir/part-<i>.parquet`` (in account-range order; rows
    within a part by (as_of, account_id)). ``npartitions``: account ranges (default: one per
    ``ACCOUNTS_PER_PARTITION`` accounts, at least two per worker). Raises
    DataValidationError with every range's problems."""
    if not as_of:
        raise FeatureError("no as-of dates given; pass at least one")
    dates = [to_utc(t) for t in as_of]
    root = Path(data_dir).resolve()
    n_accounts = pq.ParquetFile(_parquet(root, "accounts")).metadata.num_rows
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    with dask_client(scheduler) as client:
        workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
        n = npartitions or max(2 * workers, math.ceil(n_accounts / ACCOUNTS_PER_PARTITION))
        ranges = account_ranges(root, n)
        futures = [
            client.submit(  # type: ignore[attr-defined]
                _partition,
                str(root),
                lo,
                hi,
                str(out / f"part-{i:05d}.parquet"),
                dates,
                taxonomy,
                now,
                key=f"nba-features-{i}-{out}",
                pure=False,
            )
            for i, (lo, hi) in enumerate(ranges)
        ]
        # ids shared by two ranges: the one check no range can make, while they work
        shared = cross_range_duplicates(root)
        parts = client.gather(futures)  # type: ignore[attr-defined]
        who = client.who_has(futures)  # type: ignore[attr-defined]
    return _merge(parts, [who.get(f.key, ()) for f in futures], shared)


def cross_range_duplicates(data_dir: Path) -> list[Problem]:
    """The ids of a table's unique column (other than account_id: the ranges split the
    accounts, so a repeated account id falls in one range) that rows of different
    accounts share, one problem per table, with 1-based row numbers in the file. Ids
    repeated within one account are left to the range's own validation."""
    problems: list[Problem] = []
    # Bounded, spilling to disk beyond it: it runs in the client beside the workers.
    spill = Path(tempfile.gettempdir()) / "nba-duckdb-spill"
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "memory_limit": CHECK_MEMORY,
            "temp_directory": str(spill),
        }
    )
    try:
        for spec in TABLES.values():
            unique = [c.name for c in spec.columns if c.unique and c.name != "account_id"]
            path = find_table_file(data_dir, spec.name)
            if not unique or path is None or path.suffix != ".parquet":
                continue
            present = set(pq.read_schema(path).names)
            for column in unique:
                if column not in present or "account_id" not in present:
                    continue
                problems += _shared_ids(con, path, spec.name, column)
    finally:
        con.close()
    return problems


def _shared_ids(
    con: duckdb.DuckDBPyConnection, path: Path, table: str, column: str
) -> list[Problem]:
    """The problem of ``table.column`` ids that rows of different accounts share."""
    ident = '"' + column.replace('"', '""') + '"'
    rows = con.execute(
        f"""
        WITH t AS (
            SELECT {ident} AS id, account_id, file_row_number
            FROM read_parquet(?, file_row_number = true) WHERE {ident} IS NOT NULL
        ), shared AS (
            SELECT id FROM t GROUP BY id HAVING min(account_id) <> max(account_id)
        )
        SELECT t.id, t.file_row_number FROM t JOIN shared USING (id)
        ORDER BY t.file_row_number
        """,
        [str(path)],
    ).fetchall()
    if not rows:
        return []
    return [
        Problem(
            table=table,
            column=column,
            message=f"duplicate {column} (rows of different accounts share it)",
            expected=f"each {column} once",
            rows=[int(r) + 1 for _, r in rows[:10]],
            n_rows=len(rows),
            sample=list(dict.fromkeys(str(i) for i, _ in rows))[:5],
        )
    ]


def _merge(
    parts: list[dict[str, Any]], where: list[Sequence[str]], shared: list[Problem]
) -> DaskFilesResult:
    raise_range_problems(parts, shared)
    result = DaskFilesResult(partitions=len(parts))
    result.features = parts[0]["features"]
    for i, part in enumerate(parts):
        result.rows += part["rows"]
        for table, n in part["rows_in"].items():
            # every range reads the whole catalog: count it once
            result.rows_in[table] = n if table == "content" else result.rows_in.get(table, 0) + n
        for worker in where[i] or ("unknown",):
            result.worker_peak_mb[worker] = max(result.worker_peak_mb.get(worker, 0.0),
                                                part["peak_mb"])  # fmt: skip
    for name in result.features:
        firsts = [p["first"][name] for p in parts if p["rows"]]
        varies = (
            any(p["distinct"][name] > 1 for p in parts)
            or len({("<NA>" if pd.isna(v) else v) for v in firsts}) > 1
        )
        if varies:
            result.not_constant.add(name)
    return result
