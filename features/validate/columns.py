"""Per-column checks: convert one raw column to its canonical dtype and report bad rows.

Each column kind of the data contract (``features.schema``) has a converter; values that
cannot be converted, missing values in required columns, duplicates of unique columns and
values out of range become problems in the table's :class:`CheckContext`. Columns already in
canonical dtype are passed through without conversion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.mapping import TimestampFormats, split_list_column, timestamp_format_for
from features.problems import Problem
from features.schema import TABLES, Column
from features.taxonomy import Taxonomy

MAX_ROWS = 10  # row numbers listed per problem
MAX_SAMPLE = 5  # distinct bad values listed per problem


def is_unique(series: pd.Series) -> bool:
    """``series.is_unique``, in one comparison pass when the series is Arrow-backed strings
    in strictly increasing order without missing values (ids exported in order, as most
    are): such a series is unique, and checking the order costs a small part of hashing
    millions of strings. Otherwise the hash pass."""
    if (
        isinstance(series.dtype, pd.StringDtype)
        and series.dtype.storage == "pyarrow"
        and len(series) > 1
        and not series.hasnans
    ):
        values = pa.chunked_array(pa.array(series.array))
        if pc.all(pc.less(values[:-1], values[1:])).as_py():
            return True
    return bool(series.is_unique)


@dataclass
class CheckContext:
    """What checks need (taxonomy, now, how timestamps are written) and what they found."""

    taxonomy: Taxonomy
    now: pd.Timestamp
    timestamp_format: TimestampFormats
    timezone: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_table_problem(self, table: str, message: str, expected: str) -> None:
        self.problems.append(Problem(table, "", message, expected))

    def add_rows(
        self,
        table: str,
        column: str,
        message: str,
        expected: str,
        mask: np.ndarray | pd.Series,
        *,
        values: pd.Series | None = None,
    ) -> bool:
        """Whether any row has the problem; records it for the rows where ``mask`` holds,
        with a sample of ``values`` there."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if len(positions) == 0:
            return False
        sample: list[str] = []
        if values is not None:
            # Distinct values among the first bad rows: enough for a sample, cheap at 10M rows.
            head = values.iloc[positions[:10_000]]
            sample = [str(v) for v in pd.unique(head.to_numpy(dtype=object))[:MAX_SAMPLE]]
        self.problems.append(
            Problem(
                table,
                column,
                message,
                expected,
                rows=(positions[:MAX_ROWS] + 1).tolist(),
                n_rows=len(positions),
                sample=sample,
            )
        )
        return True


def check_table(table: str, frame: pd.DataFrame, ctx: CheckContext) -> dict[str, pd.Series]:
    """The converted columns of one table (canonical dtypes where conversion was possible);
    problems and notes go to ``ctx``."""
    schema = TABLES[table]
    extra = [c for c in frame.columns if c not in schema.names]
    if extra:
        ctx.notes.append(f"{table}: ignored unknown columns {', '.join(repr(c) for c in extra)}")
    out: dict[str, pd.Series] = {}
    for column in schema.columns:
        if column.name not in frame.columns:
            if column.required:
                ctx.problems.append(
                    Problem(
                        table,
                        column.name,
                        "missing required column",
                        f"a column {column.name!r} ({column.description})",
                    )
                )
            continue
        series = _CONVERTERS[column.kind](table, column, frame[column.name], ctx)
        if series is None:
            continue
        # is_unique is one hash pass; duplicated (slower) only runs when there are duplicates.
        if column.unique and not is_unique(series):
            ctx.add_rows(
                table,
                column.name,
                f"duplicate {column.name}",
                f"each {column.name} once",
                series.duplicated(keep=False) & series.notna(),
                values=series,
            )
        rule = _RANGES.get((table, column.name))
        if rule is not None:
            is_bad, message, expected = rule
            ctx.add_rows(table, column.name, message, expected, is_bad(series), values=series)
        out[column.name] = series
    return out


def _check_nulls(table: str, column: Column, missing: pd.Series, ctx: CheckContext) -> None:
    if not column.nullable:
        ctx.add_rows(
            table, column.name, "missing value", "a value (the column may not be empty)", missing
        )


def _convert_id(table: str, column: Column, series: pd.Series, ctx: CheckContext) -> pd.Series:
    if series.dtype != "str":
        if pd.api.types.is_float_dtype(series.dtype):
            # Integer ids read as float because of missing values: 12.0 -> "12".
            whole = series.dropna()
            if (whole % 1 == 0).all():
                series = series.astype("Int64")
        series = series.astype("str")
    _check_nulls(table, column, series.isna(), ctx)
    return series


def _convert_number(
    table: str, column: Column, series: pd.Series, ctx: CheckContext
) -> pd.Series | None:
    integer = column.kind == "int"
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("str")  # True/False are not numbers: report them
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.astype("float64") if integer else series
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        ctx.add_rows(
            table,
            column.name,
            "non-numeric value",
            "a whole number" if integer else "a number",
            series.notna() & numbers.isna(),
            values=series,
        )
    missing = series.isna()
    _check_nulls(table, column, missing, ctx)
    if integer:
        # int64, or pandas' nullable Int64 for a nullable column (features.schema)
        dtype: Literal["Int64", "int64"] = "Int64" if column.nullable else "int64"
        if pd.api.types.is_integer_dtype(series.dtype) and not missing.any():
            return series.astype(dtype)
        fractional = numbers.notna() & (numbers % 1 != 0)
        bad = ctx.add_rows(
            table, column.name, "non-integer value", "a whole number", fractional, values=series
        )
        if bad or (numbers.isna().any() and not column.nullable):
            return None
        return numbers.astype(dtype)
    return numbers.astype("float64")


def _convert_datetime(
    table: str, column: Column, series: pd.Series, ctx: CheckContext
) -> pd.Series | None:
    _check_nulls(table, column, series.isna(), ctx)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed, shifts = series.dt.tz_convert("UTC"), _DstShifts()
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        parsed, shifts = _localize(series, ctx.timezone)
    else:
        fmt = timestamp_format_for(ctx.timestamp_format, table, column.name)
        parsed, shifts = _parse_timestamps(series, fmt, ctx.timezone)
        how = (
            f"a timestamp in the format {fmt!r}"
            if fmt
            else "an ISO 8601 timestamp such as 2024-05-01T12:00:00Z"
        )
        ctx.add_rows(
            table,
            column.name,
            "unparseable timestamp",
            how,
            series.notna() & parsed.isna(),
            values=series,
        )
    note = shifts.describe(ctx.timezone)
    if note:
        ctx.notes.append(f"{table}.{column.name}: {note}")
    parsed = parsed.dt.as_unit("ns")
    ctx.add_rows(
        table,
        column.name,
        "timestamp in the future",
        f"a time before now ({ctx.now:%Y-%m-%d %H:%M:%S} UTC)",
        parsed > ctx.now,
        values=parsed,
    )
    return parsed


@dataclass(frozen=True)
class _DstShifts:
    """How many local times fell into a DST gap or the repeated hour (and were resolved)."""

    gap: int = 0
    ambiguous: int = 0

    def describe(self, timezone: str) -> str:
        parts = []
        if self.gap:
            parts.append(f"{_times(self.gap)} in a DST gap shifted forward by the gap")
        if self.ambiguous:
            parts.append(f"{_times(self.ambiguous, 'ambiguous ')} read as the first occurrence")
        return f"{', '.join(parts)} ({timezone})" if parts else ""


def _times(n: int, adjective: str = "") -> str:
    return f"{n:,} {adjective}local time{'s' if n > 1 else ''}"


def _localize(series: pd.Series, timezone: str) -> tuple[pd.Series, _DstShifts]:
    """Naive datetimes written in ``timezone`` -> UTC, and how many needed the DST rule.

    The rule (java.time's): a time in a DST gap, which no clock showed, is read with the
    offset before the gap, i.e. shifted forward by the gap (02:30 on a spring-forward night
    in Berlin is 03:30 summer time); a time in the repeated hour is its first occurrence
    (summer time). Exports write such times when they store wall-clock times, so they are
    resolved and counted, not rejected.
    """
    strict = series.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    unresolved = strict.isna() & series.notna()
    if not unresolved.any():
        return strict.dt.tz_convert("UTC"), _DstShifts()
    first = np.ones(len(series), dtype=bool)  # True: the DST reading of an ambiguous time
    resolved = series.dt.tz_localize(timezone, ambiguous=first, nonexistent="NaT")
    gap = unresolved & resolved.isna()
    if gap.any():
        # The instant just before the gap carries the offset in force before it.
        before = series[gap].dt.tz_localize(
            timezone, ambiguous=first[: int(gap.sum())], nonexistent="shift_backward"
        )
        offset = before.dt.tz_localize(None) - before.dt.tz_convert("UTC").dt.tz_localize(None)
        shifted = (series[gap] - offset).dt.tz_localize("UTC").dt.tz_convert(timezone)
        resolved = resolved.copy()
        resolved[gap] = shifted
    shifts = _DstShifts(gap=int(gap.sum()), ambiguous=int((unresolved & ~gap).sum()))
    return resolved.dt.tz_convert("UTC"), shifts


def _parse_timestamps(
    series: pd.Series, fmt: str | None, timezone: str
) -> tuple[pd.Series, _DstShifts]:
    """Parse strings to UTC timestamps; unparseable ones become NaT. Strings with an offset
    keep it; naive ones are in ``timezone`` (:func:`_localize`'s DST rule)."""
    text = series if series.dtype == "str" else series.astype("str")
    fmt = fmt or "ISO8601"
    if timezone == "UTC":
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=True), _DstShifts()
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=fmt)
    except ValueError:
        # Mixed offsets and naive strings: parse the two groups separately.
        has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)\s*$", regex=True, na=False)
        aware = pd.to_datetime(text.where(has_offset), errors="coerce", format=fmt, utc=True)
        naive = pd.to_datetime(text.where(~has_offset), errors="coerce", format=fmt)
        local, shifts = _localize(naive, timezone)
        return aware.where(has_offset, local), shifts
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC"), _DstShifts()
    return _localize(parsed, timezone)


def _convert_category(
    table: str, column: Column, series: pd.Series, ctx: CheckContext
) -> pd.Series:
    assert column.vocabulary is not None
    vocab = ctx.taxonomy.vocabulary(column.vocabulary)
    dtype = pd.CategoricalDtype(vocab)
    _check_nulls(table, column, series.isna(), ctx)
    expected = "one of: " + ", ".join(vocab)
    message = f"unknown {column.name}"
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = [str(c) for c in series.cat.categories]
        if categories == vocab and series.cat.categories.dtype == "str":
            return series  # already canonical: no pass over the rows
        unknown = [c for c in series.cat.categories if str(c) not in set(vocab)]
        if unknown:
            ctx.add_rows(table, column.name, message, expected, series.isin(unknown), values=series)
    # Work on the distinct values: one hash pass over the rows, then re-code.
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    position = {name: i for i, name in enumerate(vocab)}
    new_positions = np.array([position.get(str(u), -2) for u in uniques], dtype=np.int64)
    if not isinstance(series.dtype, pd.CategoricalDtype) and (new_positions == -2).any():
        bad = np.isin(codes, np.flatnonzero(new_positions == -2))
        ctx.add_rows(table, column.name, message, expected, bad, values=series)
    new_codes = np.where(codes >= 0, new_positions[np.maximum(codes, 0)], -1)
    new_codes[new_codes < 0] = -1
    return pd.Series(
        pd.Categorical.from_codes(new_codes, dtype=dtype), index=series.index, name=series.name
    )


def _convert_list(table: str, column: Column, series: pd.Series, ctx: CheckContext) -> pd.Series:
    assert column.vocabulary is not None
    vocab = ctx.taxonomy.vocabulary(column.vocabulary)
    lists = split_list_column(series, "|")
    lengths = lists.str.len()
    _check_nulls(table, column, lengths.isna() | (lengths == 0), ctx)
    if column.nullable and lengths.isna().any():
        # A missing list is an empty one: the canonical form has a list in every row.
        lists = lists.map(lambda cell: cell if isinstance(cell, list) else []).astype(object)
    elements = lists.explode()  # index = row position, one entry per element
    bad = elements.notna() & ~elements.isin(vocab)
    if bad.any():
        rows = np.zeros(len(lists), dtype=bool)
        rows[elements.index[bad.to_numpy()].to_numpy(dtype=np.int64)] = True
        sample = pd.unique(elements[bad].astype(str).to_numpy())[:MAX_SAMPLE]
        ctx.problems.append(
            Problem(
                table,
                column.name,
                f"unknown {column.vocabulary}",
                "lists of: " + ", ".join(vocab),
                rows=(np.flatnonzero(rows)[:MAX_ROWS] + 1).tolist(),
                n_rows=int(rows.sum()),
                sample=[str(v) for v in sample],
            )
        )
    return lists


_Converter = Callable[[str, Column, pd.Series, CheckContext], "pd.Series | None"]
_CONVERTERS: dict[str, _Converter] = {
    "id": _convert_id,
    "text": _convert_id,
    "int": _convert_number,
    "float": _convert_number,
    "datetime": _convert_datetime,
    "category": _convert_category,
    "list": _convert_list,
}


def read_servable(text: str) -> dict[str, list[str]]:
    """An exposure's ``servable`` value: ``{"contact_id": ["content_id", ...]}``. Raises
    ValueError for anything else (validation reports it; judging on the log reads it)."""
    parsed = json.loads(text)
    if not isinstance(parsed, dict) or not all(
        isinstance(items, list) and all(isinstance(i, str) for i in items)
        for items in parsed.values()
    ):
        raise ValueError("not a JSON object of content id lists")
    return parsed


def _not_servable_json(series: pd.Series) -> pd.Series:
    """Per row: a ``servable`` value given that :func:`read_servable` refuses."""

    def bad(text: str) -> bool:
        try:
            read_servable(text)
        except ValueError:
            return True
        return False

    given = series.notna().to_numpy()
    out = np.zeros(len(series), dtype=bool)
    out[given] = [bad(t) for t in series[given]]
    return pd.Series(out, index=series.index)


# Value ranges beyond the type: (is_bad(series), message, expected).
_RANGES: dict[tuple[str, str], tuple[Callable[[pd.Series], pd.Series], str, str]] = {
    ("exposures", "propensity"): (
        lambda s: (s <= 0) | (s > 1),
        "propensity outside (0, 1]",
        "a probability in (0, 1]",
    ),
    ("accounts", "employees"): (
        lambda s: (s < 0).fillna(False),  # nullable Int64: a missing count is not negative
        "negative employees",
        "a whole number >= 0",
    ),
    ("exposures", "position"): (
        lambda s: s.notna() & ((s < 0) | (s % 1 != 0)),
        "position not a whole number >= 0",
        "a slot number such as 1 (first) or empty",
    ),
    ("exposures", "servable"): (
        _not_servable_json,
        "servable not a JSON object of content id lists",
        '{"contact_id": ["content_id", ...]} ("" for an account-level action) or empty',
    ),
}


def convert_column(
    table: str, column: Column, series: pd.Series, ctx: CheckContext
) -> pd.Series | None:
    """``series`` converted to ``column``'s canonical dtype (``None`` if it cannot be);
    problems go to ``ctx``. For columns outside the schema (declared custom attributes)."""
    return _CONVERTERS[column.kind](table, column, series, ctx)
