"""Reading and writing data directories of the six input tables (CSV or Parquet).

Reading always validates: :func:`read_data_dir` returns canonical data or raises
:class:`~features.problems.DataValidationError` with every problem, never half-loaded data.
Writing writes canonical tables as Parquet. Finding and reading the raw files is
``features.files``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from features.attributes import NO_ATTRIBUTES, AttributeDeclaration
from features.files import read_table_file
from features.mapping import ColumnMapping
from features.problems import DataValidationError
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.validate import check_data_dir, validate_tables

# read_table_file: re-exported, its callers import it from here.
__all__ = ["read_data_dir", "read_table_file", "read_tables", "write_data_dir"]


def write_data_dir(data: JourneyData, out_dir: Path | str) -> Path:
    """Write each table as ``OUT_DIR/<table>.parquet``; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in data.tables().items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return out


def read_data_dir(
    data_dir: Path | str,
    taxonomy: Taxonomy,
    mapping: ColumnMapping | None = None,
    *,
    now: pd.Timestamp | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> JourneyData:
    """Read, map and validate a data directory into canonical :class:`JourneyData`.

    Raises :class:`DataValidationError` whose ``.report`` lists every problem (missing or
    unreadable files included); nothing is returned half-loaded. Timestamps after ``now``
    (default: current UTC time) are problems. Declared custom ``attributes`` (or the
    mapping's) are kept as extra columns.
    """
    data, report = check_data_dir(
        Path(data_dir), taxonomy, mapping=mapping, now=now, attributes=attributes
    )
    if data is None:
        raise DataValidationError(report)
    return data


def read_tables(
    tables: Mapping[str, pd.DataFrame],
    taxonomy: Taxonomy,
    *,
    now: pd.Timestamp | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> JourneyData:
    """Validate tables read elsewhere (the service's store, ``nba train --store``) into
    canonical :class:`JourneyData`, exactly as the tables of a data directory are: columns
    named as in the contract, values raw or canonical. Raises :class:`DataValidationError`
    with every problem; timestamps after ``now`` (default: the current UTC time) are
    problems; declared custom ``attributes`` are kept."""
    data, report = validate_tables(tables, taxonomy, now=now, attributes=attributes)
    if data is None:
        raise DataValidationError(report)
    return data
