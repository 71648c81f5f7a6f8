"""Validation of a data directory: read its table files raw, then check them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from features.attributes import NO_ATTRIBUTES, AttributeDeclaration
from features.files import read_raw_tables
from features.mapping import ColumnMapping
from features.problems import ValidationReport
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.validate.tables import validate_tables


def check_data_dir(
    data_dir: Path,
    taxonomy: Taxonomy,
    *,
    mapping: ColumnMapping | None = None,
    now: pd.Timestamp | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> tuple[JourneyData | None, ValidationReport]:
    """The canonical data of ``data_dir`` (``None`` if there is any problem) and the report.

    Files are CSV or Parquet, read through ``mapping``; missing or unreadable files are
    problems in the report. Timestamps after ``now`` (default: current UTC time) are too.
    Custom attributes are the mapping's ``attributes`` or else ``attributes``.
    """
    raw, file_problems = read_raw_tables(data_dir, taxonomy, mapping=mapping)
    data, report = validate_tables(
        raw,
        taxonomy,
        now=now,
        timestamp_format=mapping.timestamp_format if mapping is not None else None,
        timezone=mapping.timezone if mapping is not None else "UTC",
        problems=file_problems,
        attributes=mapping.attributes if mapping is not None and mapping.attributes else attributes,
    )
    # The raw columns that validation replaced, and the checks' temporaries, were Arrow
    # buffers; Arrow's allocator keeps their pages for reuse, which numpy never does: 440 MB
    # at 10M touchpoints, held through the feature pipeline unless handed back here.
    del raw
    pa.default_memory_pool().release_unused()
    return data, report


def validate_data_dir(
    data_dir: Path,
    taxonomy: Taxonomy,
    mapping: ColumnMapping | None = None,
    *,
    now: pd.Timestamp | None = None,
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> ValidationReport:
    """The validation report of every table of ``data_dir`` (CSV or Parquet, through
    ``mapping``); unreadable or missing files are problems in the report."""
    _, report = check_data_dir(
        Path(data_dir), taxonomy, mapping=mapping, now=now, attributes=attributes
    )
    return report
