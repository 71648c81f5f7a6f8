"""What is wrong with input data, and how it is reported.

A :class:`Problem` is one thing wrong (a missing file, a bad column, bad rows); a
:class:`ValidationReport` collects them for a whole data set; :class:`DataValidationError`
carries a report that has problems. Reading files and checking tables both produce problems,
so these types depend on neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.errors import InvalidInputError


@dataclass
class Problem:
    """One thing wrong with the input: where, what, which rows, what was expected."""

    table: str
    column: str  # "" when the problem is the whole table (e.g. a missing file)
    message: str  # what is wrong, e.g. "unknown channel"
    expected: str  # what would be right, e.g. "one of: search_ads, social_ads, ..."
    rows: list[int] = field(default_factory=list)  # 1-based data row numbers, first 10
    n_rows: int = 0  # how many rows have the problem (0 for table/column-level problems)
    sample: list[str] = field(default_factory=list)  # up to 5 distinct bad values

    def format(self) -> str:
        """One line, e.g. ``touchpoints.channel: 2 rows with unknown channel (rows 2, 4);
        sample: 'fax'; expected one of: search_ads, ...``."""
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.n_rows:
            plural = "s" if self.n_rows > 1 else ""
            shown = ", ".join(str(r) for r in self.rows)
            more = (
                f" and {self.n_rows - len(self.rows):,} more"
                if self.n_rows > len(self.rows)
                else ""
            )
            rows_word = "rows" if len(self.rows) > 1 else "row"
            text = (
                f"{where}: {self.n_rows:,} row{plural} with {self.message} "
                f"({rows_word} {shown}{more})"
            )
        else:
            text = f"{where}: {self.message}"
        if self.sample:
            text += "; sample: " + ", ".join(repr(v) for v in self.sample)
        if self.expected:
            text += f"; expected {self.expected}"
        return text


@dataclass
class ValidationReport:
    """Everything found wrong with a data set, plus row counts and notes (not errors)."""

    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. ignored extra columns

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, object]:
        """The report as JSON-ready data: ``ok``, rows read per table, how many rows have a
        problem (a row with two bad columns counts twice), every problem and note as its
        one-line text."""
        return {
            "ok": self.ok,
            "rows": dict(self.row_counts),
            "rows_rejected": sum(p.n_rows for p in self.problems),
            "problems": [p.format() for p in self.problems],
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """Human-readable report: one line per problem, or an ``OK: ...`` summary line."""
        lines: list[str] = []
        if self.ok:
            total = sum(self.row_counts.values())
            counts = ", ".join(f"{n:,} {name}" for name, n in self.row_counts.items())
            lines.append(f"OK: {len(self.row_counts)} tables, {total:,} rows ({counts})")
        else:
            n = len(self.problems)
            lines.append(
                f"{n} problem{'s' if n > 1 else ''} found "
                "(row numbers count data rows from 1, the first row after the header):"
            )
            lines.extend(f"- {p.format()}" for p in self.problems)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


class DataValidationError(InvalidInputError):
    """Input data that breaks the data contract; ``.report`` lists every problem."""

    exit_code_override = 1  # `nba validate`'s documented "1 with a report"

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.format())
        self.report = report
