"""Column mappings: how a customer's CRM export maps onto the canonical tables.

A mapping YAML names, per table, the export's file, which export column is which canonical
column, and which export value is which canonical value (e.g. ``Webinar Attended`` ->
``attend``). A table may instead be given as a DuckDB query over the export's files
(``sql:``, reading the named ``sources:``; see ``features.sql_tables``). The mapping also
says how timestamps are written (format, per table or column if need be; time zone of naive
times), which phase model the export's stages use and the CSV and list separators. See
``features/config/mappings/example_crm.yaml`` for a commented example and
``docs/mappings.md`` for both styles.

:func:`apply_mapping` turns one raw export frame into a frame with canonical column names and
values; the types are still raw (strings from CSV) and are checked by ``features.validate``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import InvalidInputError
from features.schema import TABLES
from features.sql_tables import Source, is_identifier, names_in, query_problem
from features.taxonomy import PhaseModel, Taxonomy

# How timestamps are written: one strftime format for every table, or a mapping from
# ``default``, a table or a ``table.column`` to a format (see timestamp_format_for).
# ``ISO8601`` (or no format) means ISO 8601, with or without an offset.
TimestampFormats = str | Mapping[str, str] | None
ISO8601 = "ISO8601"
# csv_separator value for whitespace-aligned files: any run of spaces and tabs separates.
WHITESPACE = "whitespace"


class MappingError(InvalidInputError):
    """A mapping file that cannot be used; the message names the file and the entry."""


class ColumnMapping(BaseModel):
    """A validated column mapping (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # table -> file name inside the export directory (e.g. touchpoints: activities.csv)
    files: dict[str, str] = Field(default_factory=dict)
    # name -> export file read by the sql queries as a view of that name; a plain string
    # is the path (relative to the data directory)
    sources: dict[str, Source] = Field(default_factory=dict)
    # table -> one DuckDB SELECT giving the table (instead of a file)
    sql: dict[str, str] = Field(default_factory=dict)
    # table -> {export column: canonical column}
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    # table -> canonical column -> {export value: canonical value}
    values: dict[str, dict[str, dict[str, str]]] = Field(default_factory=dict)
    # strftime format of timestamps, or {default | table | table.column: format};
    # None or ISO8601 means ISO 8601 (with or without offset)
    timestamp_format: str | dict[str, str] | None = None
    # time zone in which naive timestamps (no offset) are written
    timezone: str = "UTC"
    # phase model of the export's stages table (a taxonomy phase model name);
    # converted to the default model with Taxonomy.to_default_phase
    phase_model: str | None = None
    # field separator of CSV files: one or more characters taken literally, or
    # "whitespace" (runs of spaces and tabs, for whitespace-aligned files)
    csv_separator: str = Field(default=",", min_length=1)
    list_separator: str = Field(default="|", min_length=1)

    @field_validator("sources", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_names(self) -> ColumnMapping:
        problems = [
            *self._unknown_tables(),
            *self._bad_renames(),
            *self._bad_value_maps(),
            *self._bad_queries(),
            *self._bad_sources(),
            *self._bad_timestamp_formats(),
        ]
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: unknown time zone {self.timezone!r} (e.g. Europe/Berlin)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _unknown_tables(self) -> Iterator[str]:
        for section in ("files", "sql", "columns", "values"):
            for table in getattr(self, section):
                if table not in TABLES:
                    yield f"{section}.{table}: unknown table; expected one of {sorted(TABLES)}"

    def _bad_renames(self) -> Iterator[str]:
        for table, renames in self.columns.items():
            if table not in TABLES:
                continue
            names = TABLES[table].names
            for export, canonical in renames.items():
                if canonical not in names:
                    yield (
                        f"columns.{table}.{export}: {canonical!r} is not a column of {table}; "
                        f"expected one of {names}"
                    )
            targets = list(renames.values())
            dupes = sorted({t for t in targets if targets.count(t) > 1})
            if dupes:
                yield f"columns.{table}: several export columns map to {dupes}"

    def _bad_value_maps(self) -> Iterator[str]:
        for table, by_column in self.values.items():
            if table not in TABLES:
                continue
            for column in by_column:
                if column not in TABLES[table].names:
                    yield (
                        f"values.{table}.{column}: not a column of {table}; "
                        f"expected one of {TABLES[table].names}"
                    )

    def _bad_queries(self) -> Iterator[str]:
        for table, query in self.sql.items():
            if table in self.files:
                yield f"sql.{table}: {table} is also given by files; give it one way"
            problem = query_problem(query)
            if problem is not None:
                yield f"sql.{table}: {problem}"

    def _bad_sources(self) -> Iterator[str]:
        used = set(names_in("\n".join(self.sql.values()), self.sources))
        for name in self.sources:
            if not is_identifier(name):
                yield f"sources.{name}: not a name a query can use (letters, digits and _)"
            elif name not in used:
                yield f"sources.{name}: not read by any sql query"

    def _bad_timestamp_formats(self) -> Iterator[str]:
        if not isinstance(self.timestamp_format, dict):
            return
        columns = [
            f"{t.name}.{c.name}" for t in TABLES.values() for c in t.columns if c.kind == "datetime"
        ]
        for key in self.timestamp_format:
            if key != "default" and key not in TABLES and key not in columns:
                yield (
                    f"timestamp_format.{key}: not 'default', a table or a timestamp column; "
                    f"expected one of {['default', *TABLES, *columns]}"
                )


def timestamp_format_for(formats: TimestampFormats, table: str, column: str) -> str | None:
    """The strftime format of ``table.column`` under ``formats`` (see
    :data:`TimestampFormats`): the column's own, else its table's, else ``default``; None
    for ISO 8601."""
    if formats is None or isinstance(formats, str):
        fmt = formats
    else:
        fmt = next(
            (formats[k] for k in (f"{table}.{column}", table, "default") if k in formats), None
        )
    return None if fmt == ISO8601 else fmt


def load_mapping(path: Path | str) -> ColumnMapping:
    """Load and validate a mapping YAML; raises :class:`MappingError` naming file and entry."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"mapping file {file} must hold a mapping at the top level")
    try:
        return ColumnMapping.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise MappingError(f"mapping file {file} is invalid: {details}") from exc


def apply_mapping(
    table: str, frame: pd.DataFrame, mapping: ColumnMapping | None, taxonomy: Taxonomy
) -> pd.DataFrame:
    """``frame`` with canonical column names and values.

    Renames the export's columns, splits list columns written as ``list_separator``-joined
    strings into lists, replaces export values by canonical ones and converts the stages'
    phases of the mapping's ``phase_model`` to the taxonomy's default model
    (``Taxonomy.to_default_phase``: the first default phase a phase covers). Values not
    named in the mapping are kept as they are, so validation reports them.
    Types are not checked here. With ``mapping=None`` the frame is returned unchanged.
    """
    if mapping is None:
        return frame
    schema = TABLES[table]
    out = frame.rename(columns=mapping.columns.get(table, {}))
    value_maps = mapping.values.get(table, {})
    for column in schema.columns:
        if column.name not in out.columns:
            continue
        series = out[column.name]
        if column.kind == "list":
            lists = split_list_column(series, mapping.list_separator)
            lookup = dict(value_maps.get(column.name, {}))
            if lookup:
                lists = lists.map(
                    lambda items, m=lookup: (
                        items if not isinstance(items, list) else [m.get(v, v) for v in items]
                    )
                )
            out[column.name] = lists
            continue
        lookup = dict(value_maps.get(column.name, {}))
        if table == "stages" and column.name == "phase" and mapping.phase_model is not None:
            lookup = _phase_lookup(lookup, series, mapping.phase_model, taxonomy)
        if lookup:
            out[column.name] = _replace_values(series, lookup)
    return out


def _replace_values(series: pd.Series, lookup: dict[str, str]) -> pd.Series:
    """``series`` with values replaced through ``lookup``, as a categorical.

    Works on the distinct values only (factorize, map, re-code), so 10M rows with a few
    dozen distinct values cost one hash pass.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = np.array([lookup.get(str(v), v) for v in uniques], dtype=object)
    new_codes, new_uniques = pd.factorize(mapped)
    final = np.where(codes >= 0, new_codes[np.maximum(codes, 0)], -1) if len(mapped) else codes
    categories = (
        pd.Index(new_uniques, dtype="str") if len(new_uniques) else pd.Index([], dtype="str")
    )
    return pd.Series(
        pd.Categorical.from_codes(final, categories=categories),
        index=series.index,
        name=series.name,
    )


def _phase_lookup(
    lookup: dict[str, str], series: pd.Series, model: str, taxonomy: Taxonomy
) -> dict[str, str]:
    """Export value -> default-model phase, for every distinct value that maps to a phase of
    ``model`` (after the explicit ``lookup``); unknown values are left for validation."""
    phase_names = set(_phase_model(taxonomy, model).names)
    out: dict[str, str] = {}
    for value in pd.unique(series.dropna()):
        name = lookup.get(str(value), str(value))
        out[str(value)] = taxonomy.to_default_phase(name, model) if name in phase_names else name
    return out


def _phase_model(taxonomy: Taxonomy, model: str) -> PhaseModel:
    if model not in taxonomy.phase_models:
        raise MappingError(
            f"phase_model {model!r} is not a phase model of the taxonomy; "
            f"expected one of {sorted(taxonomy.phase_models)}"
        )
    return taxonomy.phase_models[model]


def split_list_column(series: pd.Series, separator: str) -> pd.Series:
    """List cells as Python lists of str: strings are split on ``separator``; arrays (from
    Parquet) and tuples become lists; missing values stay missing."""

    def convert(cell: Any) -> Any:
        if isinstance(cell, str):
            return [part.strip() for part in cell.split(separator) if part.strip()]
        if isinstance(cell, list | tuple | np.ndarray):
            return [str(v) for v in cell]
        return cell

    return series.map(convert).astype(object)
