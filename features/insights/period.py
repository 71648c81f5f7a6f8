"""The period an insights report covers: ``[start, end)`` in UTC, the equally long period
before it (what trends compare with) and its weekly or monthly buckets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from features.errors import InvalidInputError
from features.timestamps import to_utc

Every = Literal["week", "month"]
EVERY: tuple[Every, ...] = ("week", "month")
# Without --from, a report covers this many days before its end.
DEFAULT_DAYS = 90


class PeriodError(InvalidInputError):
    """A period that cannot be reported: the message names the option and the value."""


@dataclass(frozen=True)
class Period:
    """``[start, end)`` (UTC) and the trend's bucket size."""

    start: pd.Timestamp
    end: pd.Timestamp
    every: Every = "month"

    def __post_init__(self) -> None:
        if self.every not in EVERY:
            raise PeriodError(f"every={self.every!r}: expected one of {', '.join(EVERY)}")
        if not self.start < self.end:
            raise PeriodError(
                f"from {self.start.isoformat()} is not before to {self.end.isoformat()}: "
                "expected a period of at least one day"
            )

    @property
    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.start - (self.end - self.start), self.start, self.every)

    def buckets(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """``[from, to)`` of each week (from Monday) or calendar month overlapping the period,
        clipped to it."""
        freq = "W-MON" if self.every == "week" else "MS"
        edges = pd.date_range(self.start, self.end, freq=freq, inclusive="neither")
        bounds = [self.start, *edges, self.end]
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if a < b]

    def to_dict(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "every": self.every}


def resolve_period(
    start: object | None, end: object | None, *, every: str, last_event: pd.Timestamp | None
) -> Period:
    """The period of ``--from``/``--to`` (dates or times, naive = UTC): ``to`` defaults to the
    day after the latest event (midnight UTC; today when there is none), ``from`` to
    :data:`DEFAULT_DAYS` days before ``to``. Raises PeriodError naming a value that is not a
    date, or an empty period."""
    end_ts = _time(end, "to") if end is not None else _default_end(last_event)
    start_ts = (
        _time(start, "from") if start is not None else end_ts - pd.Timedelta(DEFAULT_DAYS, "D")
    )
    if every not in EVERY:
        raise PeriodError(f"every {every!r}: expected one of {', '.join(EVERY)}")
    return Period(start_ts, end_ts, "week" if every == "week" else "month")


def _time(value: object, name: str) -> pd.Timestamp:
    try:
        ts = to_utc(value)
    except (ValueError, TypeError) as exc:
        raise PeriodError(f"{name} {value!r} is not a date (expected e.g. 2025-06-01)") from exc
    if ts is pd.NaT:
        raise PeriodError(f"{name} {value!r} is not a date (expected e.g. 2025-06-01)")
    return ts


def _default_end(last_event: pd.Timestamp | None) -> pd.Timestamp:
    last = last_event if last_event is not None and last_event is not pd.NaT else None
    base = to_utc(last) if last is not None else pd.Timestamp.now(tz="UTC")
    return base.floor("D") + pd.Timedelta(1, "D")
