"""The table-level driver: check every table, the references between them, and convert.

:func:`validate_tables` turns raw frames (any dtypes: all strings from CSV, typed columns
from Parquet) into canonical :class:`~features.schema.JourneyData` and reports every problem
at once: table, column, the 1-based numbers of the first offending data rows, a sample of the
bad values and what was expected. If anything is wrong no data is returned, so nothing
half-loaded is ever used.

All checks are vectorised (``pd.to_numeric``/``pd.to_datetime`` with ``errors="coerce"``,
``factorize``, ``isin``, ``duplicated``), and columns already in canonical dtype are passed
through without conversion, so millions of rows validate in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from features.attributes import NO_ATTRIBUTES, AttributeDeclaration
from features.id_codes import id_positions
from features.mapping import TimestampFormats
from features.problems import Problem, ValidationReport
from features.schema import (
    OPTIONAL_TABLES,
    TABLE_ORDER,
    TABLES,
    Column,
    JourneyData,
    missing_column,
)
from features.taxonomy import Taxonomy
from features.validate.attributes import check_attributes
from features.validate.columns import CheckContext, check_table


def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    taxonomy: Taxonomy,
    *,
    now: pd.Timestamp | None = None,
    timestamp_format: TimestampFormats = None,
    timezone: str = "UTC",
    problems: Sequence[Problem] = (),
    attributes: AttributeDeclaration = NO_ATTRIBUTES,
) -> tuple[JourneyData | None, ValidationReport]:
    """The canonical data (``None`` if there is any problem) and the report of every problem.

    ``raw`` maps table names to frames with canonical column names (apply a column mapping
    first); values may be strings (CSV) or typed (Parquet). The optional tables
    (``features.schema.OPTIONAL_TABLES``) may be absent: ``stages`` and ``exposures`` are then
    empty, ``contacts`` and ``content`` the ones the events name (:func:`named_contacts`,
    :func:`named_content`); a note says so. Naive timestamps are taken to be in
    ``timezone`` (times in a DST gap or the repeated hour are resolved and counted in
    notes); string timestamps are parsed with ``timestamp_format`` (one format, or per table
    and column as ``features.mapping.timestamp_format_for`` resolves it; default ISO 8601).
    Timestamps after ``now`` (default: the current UTC time) are errors. Extra columns are
    dropped and listed as notes; optional columns that are absent are added as all-missing.
    ``problems`` found before (e.g. unreadable files) are included in the report; their
    tables are not reported as missing again. Columns declared in ``attributes`` are kept
    (after the table's own columns), checked for their kind, and a declared column that is
    absent is a problem.
    """
    if now is None:
        now = pd.Timestamp.now(tz="UTC")
    elif now.tzinfo is None:
        now = now.tz_localize("UTC")
    ctx = CheckContext(taxonomy, now.tz_convert("UTC"), timestamp_format, timezone)
    ctx.problems.extend(problems)
    reported = {p.table for p in problems}
    present = _present_tables(raw, ctx, reported=reported)
    absent = [t for t in OPTIONAL_TABLES if t not in raw and t not in reported]
    lengths = {table: len(frame) for table, frame in present.items()}
    extras = {
        table: check_attributes(table, present[table], attributes.of(table), ctx)
        for table in present
        if attributes.of(table)
    }
    present = {t: f.drop(columns=list(extras.get(t, {}))) for t, f in present.items()}
    # Tables are checked in parallel (Arrow's hashing releases the GIL; 2 cores halve the
    # time at 10M rows), each into its own context, merged in table order for a stable report.
    contexts = {t: replace(ctx, problems=[], notes=[]) for t in present}
    with ThreadPoolExecutor(max_workers=2) as pool:
        checked = pool.map(lambda t: check_table(t, present[t], contexts[t]), list(present))
        converted = dict(zip(present, checked, strict=True))
    for table in present:
        ctx.problems.extend(contexts[table].problems)
        ctx.notes.extend(contexts[table].notes)
    for table in absent:
        _derive_absent(table, converted, lengths, ctx)
    # Derived tables hold only what the events name: their references were checked there.
    _check_references(converted, ctx, derived=set(absent))

    report = ValidationReport(ctx.problems, lengths, ctx.notes)
    if not report.ok:
        return None, report
    frames = {
        table: _canonical_frame(table, converted[table], lengths[table], taxonomy).assign(
            **extras.get(table, {})
        )
        for table in TABLE_ORDER
    }
    return JourneyData(**frames), report


def _present_tables(
    raw: Mapping[str, pd.DataFrame], ctx: CheckContext, *, reported: set[str]
) -> dict[str, pd.DataFrame]:
    """The tables to check, in table order, indexed by position: absent optional tables as
    empty ones; absent required tables are problems in ``ctx`` unless already ``reported``."""
    present: dict[str, pd.DataFrame] = {}
    for table in TABLE_ORDER:
        frame = raw.get(table)
        if frame is None:
            if table in OPTIONAL_TABLES:
                frame = pd.DataFrame(
                    {c: pd.Series([], dtype="str") for c in TABLES[table].required}
                )
                if table in ("stages", "exposures") and table not in reported:
                    ctx.notes.append(f"{table}: no table given; read as empty")
            else:
                if table not in reported:
                    ctx.add_table_problem(table, "missing table", f"a {table} table")
                continue
        present[table] = frame.reset_index(drop=True)  # row numbers are positions + 1
    return present


def _check_references(
    converted: dict[str, dict[str, pd.Series]], ctx: CheckContext, *, derived: set[str]
) -> None:
    """Every id that points into another table must exist there (not checked for the
    ``derived`` tables, made from the ids the events name)."""
    checks: list[tuple[str, Column, pd.Series, pd.Series]] = []
    for table in TABLE_ORDER:
        if table in derived:
            continue
        for column in TABLES[table].columns:
            if column.references is None or column.name not in converted.get(table, {}):
                continue
            ref_table, ref_column = column.references
            target = converted.get(ref_table, {}).get(ref_column)
            if target is None:
                continue  # the referenced table or column is missing: reported already
            checks.append((table, column, converted[table][column.name], target))
    with ThreadPoolExecutor(max_workers=2) as pool:
        unknown = list(pool.map(lambda c: c[2].notna() & ~_isin(c[2], c[3]), checks))
    for (table, column, series, _), bad in zip(checks, unknown, strict=True):
        ref_table, ref_column = column.references or ("", "")
        ctx.add_rows(
            table,
            column.name,
            f"{column.name} not in {ref_table}",
            f"a value of {ref_table}.{ref_column}",
            bad,
            values=series,
        )


def _isin(series: pd.Series, target: pd.Series) -> np.ndarray:
    """``series.isin(target)`` as a bool array; pyarrow's hash set for arrow-backed strings
    (pandas' own isin materialises the target as Python objects: 10x slower at 10M rows)."""
    arrow = all(
        isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"
        for s in (series, target)
    )
    if not arrow:
        return np.asarray(series.isin(target), dtype=bool)
    # The positions, not just membership: the feature pipeline reads the same ones.
    return id_positions(series, target) >= 0


def _canonical_frame(
    table: str, columns: dict[str, pd.Series], length: int, taxonomy: Taxonomy
) -> pd.DataFrame:
    """The table in schema column order, absent optional columns added as all-missing."""
    index = pd.RangeIndex(length)
    out = {
        c.name: columns[c.name] if c.name in columns else missing_column(c, length, taxonomy)
        for c in TABLES[table].columns
    }
    return pd.DataFrame(out, index=index)


def _derive_absent(
    table: str,
    converted: dict[str, dict[str, pd.Series]],
    lengths: dict[str, int],
    ctx: CheckContext,
) -> None:
    """Fill an absent ``contacts`` or ``content`` table with what the events name (in
    ``converted`` and ``lengths``), and note it."""
    if table == "contacts":
        derived, conflicts = named_contacts(converted)
        for source, bad in conflicts.items():
            ctx.add_rows(
                source,
                "contact_id",
                "contact_id named with several accounts (no contacts table says which)",
                "each contact_id with one account_id",
                bad,
                values=converted[source]["contact_id"],
            )
        what = "contact ids the touchpoints and exposures name (no roles)"
    elif table == "content":
        derived = named_content(converted)
        what = "content ids the touchpoints and exposures name (no type, phases, roles, topic)"
    else:
        return
    converted[table] = derived
    lengths[table] = len(derived[TABLES[table].columns[0].name])
    ctx.notes.append(f"{table}: no table given; read as the {lengths[table]:,} {what}")


def _event_columns(
    converted: dict[str, dict[str, pd.Series]], columns: list[str]
) -> dict[str, pd.DataFrame]:
    """The touchpoints' and exposures' ``columns`` (those that converted), by table."""
    out: dict[str, pd.DataFrame] = {}
    for table in ("touchpoints", "exposures"):
        found = converted.get(table, {})
        if all(c in found for c in columns):
            out[table] = pd.DataFrame({c: found[c] for c in columns})
    return out


def named_contacts(
    converted: dict[str, dict[str, pd.Series]],
) -> tuple[dict[str, pd.Series], dict[str, np.ndarray]]:
    """The contacts table of data without one: each contact id the events name, with its
    account and created at its first event (as ingestion creates contacts); and per event
    table, the rows naming a contact with another account than its first row does."""
    events = _event_columns(converted, ["contact_id", "account_id", "ts"])
    named = pd.concat(events.values(), ignore_index=True) if events else None
    if named is None or not named["contact_id"].notna().any():
        return {"contact_id": pd.Series([], dtype="str")}, {}
    named = named[named["contact_id"].notna()]
    first = named.sort_values("ts", kind="stable").groupby("contact_id", sort=True)
    contacts = first.agg(account_id=("account_id", "first"), created_at=("ts", "min"))
    owner = contacts["account_id"]
    conflicts = {
        table: (
            frame["contact_id"].notna()
            & (frame["account_id"] != owner.reindex(frame["contact_id"]).to_numpy())
        ).to_numpy(dtype=bool)
        for table, frame in events.items()
    }
    return {
        "contact_id": pd.Series(contacts.index.to_numpy(), dtype="str"),
        "account_id": pd.Series(owner.to_numpy(), dtype="str"),
        "created_at": contacts["created_at"].reset_index(drop=True),
    }, conflicts


def named_content(converted: dict[str, dict[str, pd.Series]]) -> dict[str, pd.Series]:
    """The content table of data without one: each content id the events name, described by
    nothing else (a catalog of bare items)."""
    ids = [frame["content_id"] for frame in _event_columns(converted, ["content_id"]).values()]
    named = pd.concat(ids, ignore_index=True).dropna() if ids else pd.Series([], dtype="str")
    distinct = named.astype("str").drop_duplicates().sort_values(ignore_index=True)
    return {"content_id": distinct}
