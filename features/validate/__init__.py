"""Validation of the six input tables against the data contract (``features.schema``).

Modules: ``columns`` (per-column checks and conversion), ``tables`` (the table-level driver
:func:`validate_tables`: every table, references between them, canonical frames) and
``data_dir`` (read a data directory's files, then check them). The problem and report types
are ``features.problems``; they are re-exported here, as are the entry points.
"""

from features.problems import DataValidationError, Problem, ValidationReport
from features.validate.data_dir import check_data_dir, validate_data_dir
from features.validate.tables import validate_tables

__all__ = [
    "DataValidationError",
    "Problem",
    "ValidationReport",
    "check_data_dir",
    "validate_data_dir",
    "validate_tables",
]
