"""The table files of a data directory: finding them and reading them raw.

A data directory holds one file per table: ``<table>.parquet`` or ``<table>.csv`` (or the
file names a column mapping gives, e.g. a CRM export's ``activities.csv``), or the export
files a mapping's SQL queries read (``features.sql_tables``). ``exposures`` is optional.
Files and query results are read as they are, through the mapping's names and values;
checking the values against the data contract is ``features.validate``'s job.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from features.mapping import WHITESPACE, ColumnMapping, MappingError, apply_mapping
from features.problems import Problem
from features.schema import OPTIONAL_TABLES, TABLE_ORDER
from features.sql_tables import read_sql_tables
from features.taxonomy import Taxonomy

# File names tried for a table without a mapping entry, in order of preference.
_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def read_table_file(path: Path, mapping: ColumnMapping | None = None) -> pd.DataFrame:
    """One table file as a raw frame, columns as named in the file.

    CSV (``.csv``, ``.csv.gz``, ``.txt``): every column as ``str``, empty cells and the usual
    NA markers missing, separated by the mapping's ``csv_separator`` (default ``,``; ``.tsv``
    without a mapping: tab).
    Parquet: columns keep their stored types (no conversion, so typed data stays fast).
    Raises ``ValueError`` for other file types and the reader's errors for broken files.
    """
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return pd.read_parquet(path)
    if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        separator = mapping.csv_separator if mapping is not None else ","
        if name.endswith(".tsv") and mapping is None:
            separator = "\t"
        return pd.read_csv(path, dtype="str", keep_default_na=True, **_separator_options(separator))
    raise ValueError(f"{path.name}: unknown file type (expected .csv or .parquet)")


def _separator_options(separator: str) -> dict[str, Any]:
    """``read_csv`` arguments for a ``csv_separator``: one character as is (the fast C
    parser); ``whitespace`` as runs of spaces and tabs (also C); longer separators taken
    literally, which needs the Python parser (pandas reads them as a regular expression)."""
    if separator == WHITESPACE:
        return {"sep": r"\s+"}
    if len(separator) == 1:
        return {"sep": separator}
    return {"sep": re.escape(separator), "engine": "python"}


def find_table_file(
    data_dir: Path, table: str, *, mapping: ColumnMapping | None = None
) -> Path | None:
    """The file holding ``table`` in ``data_dir`` (the mapping's file name if it names one,
    else ``<table>.parquet``, ``<table>.csv``, ``<table>.csv.gz``), or None if absent."""
    if mapping is not None and table in mapping.files:
        path = data_dir / mapping.files[table]
        return path if path.is_file() else None
    for suffix in _SUFFIXES:
        path = data_dir / f"{table}{suffix}"
        if path.is_file():
            return path
    return None


def read_raw_tables(
    data_dir: Path, taxonomy: Taxonomy, *, mapping: ColumnMapping | None = None
) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Read every table file of ``data_dir`` (or run the mapping's query for the table) and
    apply ``mapping`` (canonical names and values, raw types). Returns the frames found and
    one problem per table file that is missing (except optional ``exposures``) or cannot be
    read, and per query that fails."""
    raw: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    if mapping is not None:
        raw, problems = read_sql_tables(
            data_dir, mapping.sql, sources=mapping.sources, timezone=mapping.timezone
        )
    queried = set(mapping.sql) if mapping is not None else set()
    for table in TABLE_ORDER:
        if table in queried:
            continue
        path = find_table_file(data_dir, table, mapping=mapping)
        if path is None:
            if table not in OPTIONAL_TABLES:
                names = (
                    mapping.files[table]
                    if mapping is not None and table in mapping.files
                    else f"{table}.parquet or {table}.csv"
                )
                problems.append(Problem(table, "", "missing table file", f"{names} in {data_dir}"))
            continue
        try:
            raw[table] = read_table_file(path, mapping)
        except (OSError, ValueError) as exc:
            problems.append(
                Problem(table, "", f"cannot read {path.name}: {exc}", "a CSV or Parquet file")
            )
    mapped: dict[str, pd.DataFrame] = {}
    for table in TABLE_ORDER:  # files and query results alike
        if table not in raw:
            continue
        try:
            mapped[table] = apply_mapping(table, raw[table], mapping, taxonomy)
        except MappingError as exc:
            problems.append(Problem(table, "", f"mapping cannot be applied: {exc}", ""))
    # In table order, files and queries alike, so a report reads the same either way.
    problems.sort(key=lambda p: TABLE_ORDER.index(p.table))
    return mapped, problems
