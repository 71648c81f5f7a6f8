"""Tables given as SQL queries over a customer's export files, run by DuckDB.

A column mapping may give any canonical table as one DuckDB ``SELECT`` (``sql:``) instead of
a file. The queries read the export through named ``sources:`` (each a file or glob, relative
to the data directory, with DuckDB reader options) that become views of the same name, or
read files directly (``read_csv('leads.csv')``), also relative to the data directory. So
joins, unions, unpivots, constants, generated ids and time-zone arithmetic need no Python.

The connection is in memory, fetches nothing (extension auto-install and auto-load are off,
community extensions are refused) and uses the mapping's time zone as its ``TimeZone``, so a
cast of a naive ``TIMESTAMP`` to ``TIMESTAMPTZ`` reads it as a local time there, as the
validation does. A mapping is trusted like code: its queries read any file the user can.

Each query's result becomes a pandas frame that goes on exactly like a file read raw
(``features.files``): through the mapping's renames and value maps, then the validation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.errors import InvalidInputError
from features.problems import Problem

SourceFormat = Literal["csv", "parquet", "json"]
# A reader option's value as YAML gives it; lists and mappings become DuckDB lists and
# structs (e.g. read_csv's ``types: {Customer ID: VARCHAR}``).
OptionValue = str | int | float | bool | list[Any] | dict[str, Any]

_READERS: dict[SourceFormat, str] = {
    "csv": "read_csv",
    "parquet": "read_parquet",
    "json": "read_json",
}
# File name endings -> format, for sources that do not name one.
_SUFFIX_FORMATS: dict[str, SourceFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Source(BaseModel):
    """One export file (or glob of files) that queries read as a view of the source's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1)  # relative to the data directory; globs allowed
    format: SourceFormat | None = None  # default: from the path's ending
    # named parameters of DuckDB's reader, e.g. {delim: ";", timestampformat: "%d.%m.%Y"}
    options: dict[str, OptionValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Source:
        if self.format is None and source_format(self.path) is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its ending; "
                f"give format: one of {sorted(_READERS)}"
            )
        bad = [name for name in self.options if not _IDENTIFIER.match(name)]
        if bad:
            raise ValueError(f"options {bad} are not reader parameter names")
        return self

    @property
    def reader(self) -> str:
        """The DuckDB table function that reads this source (``read_csv``, ...)."""
        fmt = self.format or source_format(self.path)
        assert fmt is not None  # checked on validation
        return _READERS[fmt]

    def reader_sql(self) -> str:
        """The DuckDB table function call that reads this source."""
        args = [_literal(self.path), *(f"{k} = {_literal(v)}" for k, v in self.options.items())]
        return f"{self.reader}({', '.join(args)})"


def source_format(path: str) -> SourceFormat | None:
    """The format a path's ending names (``.csv.gz`` is CSV), or None."""
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    return next((f for s, f in _SUFFIX_FORMATS.items() if name.endswith(s)), None)


def query_problem(query: str) -> str | None:
    """Why ``query`` cannot be a table's query (DuckDB's parser message, or not exactly one
    SELECT), or None if it parses as one."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        return one_line(str(exc))
    if len(statements) != 1:
        return f"expected one SELECT statement, found {len(statements)} statements"
    if statements[0].type != duckdb.StatementType.SELECT:
        return f"expected a SELECT statement, found {statements[0].type.name}"
    return None


def names_in(query: str, names: Iterable[str]) -> list[str]:
    """The ``names`` (SQL identifiers, case-insensitive) that ``query`` mentions."""
    return [
        name
        for name in names
        if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", query, re.IGNORECASE)
    ]


def is_identifier(name: str) -> bool:
    """Whether ``name`` can name a source view without quoting."""
    return bool(_IDENTIFIER.match(name))


def read_sql_tables(
    data_dir: Path,
    queries: Mapping[str, str],
    *,
    sources: Mapping[str, Source],
    timezone: str,
) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Each table's query result as a frame, and a problem per table whose query (or a
    source it reads) fails, with DuckDB's message.

    Paths in sources and queries are relative to ``data_dir``; naive timestamps in the
    results are local times in ``timezone`` (the validation converts them). Raises
    :class:`InvalidInputError` if DuckDB does not know ``timezone``.
    """
    frames: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    if not queries:
        return frames, problems
    with _connect(data_dir, timezone) as con:
        broken = _create_views(con, sources, queries)
        for table, query in queries.items():
            failed = names_in(query, broken)
            if failed:
                problems.extend(
                    Problem(
                        table,
                        "",
                        f"source {name!r} ({sources[name].path}) cannot be read: {broken[name]}",
                        f"a file {sources[name].path} in {data_dir} that DuckDB's "
                        f"{sources[name].reader} reads with the source's options",
                    )
                    for name in failed
                )
                continue
            try:
                frames[table] = _result_frame(con.sql(query))
            except duckdb.Error as exc:
                problems.append(
                    Problem(
                        table,
                        "",
                        f"sql query failed: {one_line(str(exc))}",
                        f"a query that runs in DuckDB over the files of {data_dir}",
                    )
                )
    return frames, problems


def _result_frame(relation: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The query's result as pandas, DuckDB's types kept (``df()``: strings, nullable
    integers, decimals as floats, lists as arrays, TIMESTAMPTZ as tz-aware times).

    DuckDB 2.0 hands a nanosecond TIMESTAMPTZ (what it reads from pandas' own Parquet
    files) to pandas as naive UTC wall times; those are marked UTC here, so an instant
    is never read as a local time.
    """
    frame = relation.df()
    for position, dtype in enumerate(relation.types):
        column = frame.iloc[:, position]
        if dtype.id == "timestamptz_ns" and pd.api.types.is_datetime64_dtype(column.dtype):
            frame.isetitem(position, column.dt.tz_localize("UTC"))
    return frame


def _connect(data_dir: Path, timezone: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that reads files relative to ``data_dir`` and never fetches
    an extension (a run must not depend on the network or change the machine)."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "file_search_path": str(data_dir.resolve()),
        },
    )
    try:
        con.execute(f"SET TimeZone = {_literal(timezone)}")
    except duckdb.Error as exc:
        con.close()
        raise InvalidInputError(
            f"timezone: DuckDB does not know the time zone {timezone!r}, so the sql queries "
            f"cannot run in it: {one_line(str(exc))}"
        ) from exc
    return con


def _create_views(
    con: duckdb.DuckDBPyConnection, sources: Mapping[str, Source], queries: Mapping[str, str]
) -> dict[str, str]:
    """Create a view per source some query mentions; returns DuckDB's message for each
    source that cannot be read. Unused sources are not read at all."""
    used = set(names_in("\n".join(queries.values()), sources))
    broken: dict[str, str] = {}
    for name, source in sources.items():
        if name not in used:
            continue
        try:
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {source.reader_sql()}')
        except duckdb.Error as exc:
            # Without DuckDB's "LINE 1: CREATE VIEW ..." excerpt: the user did not write it.
            broken[name] = one_line(str(exc).split("\nLINE ")[0])
    return broken


def one_line(message: str) -> str:
    """A DuckDB message on one line: its lines joined, the caret lines under the query left
    out (they point at columns of a line no longer shown as it was)."""
    lines = [line.strip() for line in message.splitlines()]
    return " ".join(line for line in lines if line and set(line) != {"^"})


def _literal(value: Any) -> str:
    """``value`` as a DuckDB literal (strings quoted, lists as ``[...]``, mappings as
    structs ``{'key': value}``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"
