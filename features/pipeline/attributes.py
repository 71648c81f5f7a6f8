"""Features from declared custom attributes (``features.attributes``), point in time.

Definitions (``features.pipeline.specs`` words them for reason codes):

- account ``number``: ``account_<name>``, the value as recorded on the account;
- account ``category``: ``account_<name>``, a categorical whose levels are fixed at training;
- touchpoint/exposure ``number``: ``<table>_<name>_sum_<w>d``, the sum over the account's
  touchpoints (exposures) in each of the pipeline's windows (missing values add nothing);
- touchpoint/exposure ``category``: ``<table>_<name>_last``, the value of the account's last
  touchpoint (exposure) before as-of that had one, and ``n_<table>_<name>_<level>_90d``, the
  count per level in the last 90 days for the ``MAX_COUNTED_LEVELS`` most frequent levels.

Levels of categorical attributes are a fitted vocabulary (:func:`fit_attributes`): the
``MAX_LEVELS`` most frequent values in the training data, most frequent first. They are
saved with the models (``features.attributes.FittedAttributes.to_dict``) so serving encodes
values exactly as training did; a value not among them is missing. The account table is a
snapshot (as the firmographics are): its attributes are read as they are now, at every
as-of date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.attributes import MAX_LEVELS, AttributeDeclaration, FittedAttributes
from features.pipeline.prepare import PreparedEvents, codes
from features.pipeline.specs import ENGAGEMENT_WINDOW_DAYS, WINDOWS_DAYS, attribute_prefix
from features.schema import JourneyData
from features.timestamps import NS_PER_DAY, column_ns


def fit_attributes(
    data: JourneyData, declaration: AttributeDeclaration, *, before: pd.Timestamp | None = None
) -> FittedAttributes:
    """``declaration`` with the levels of each categorical attribute: its ``MAX_LEVELS`` most
    frequent values in ``data`` (ties by value), most frequent first. With ``before``, only
    touchpoints and exposures earlier than it count (fit on the training period)."""
    levels: dict[str, tuple[str, ...]] = {}
    for table, columns in declaration.tables.items():
        frame = getattr(data, table)
        if before is not None and "ts" in frame and len(frame):
            frame = frame[column_ns(frame["ts"]) < before.as_unit("ns").value]
        for name, kind in columns.items():
            if kind != "category" or name not in frame:
                continue
            counts = frame[name].dropna().astype("str").value_counts()
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            levels[f"{table}.{name}"] = tuple(str(v) for v, _ in ranked[:MAX_LEVELS])
    return FittedAttributes(declaration, levels)


def attribute_features(
    data: JourneyData, prep: PreparedEvents, as_of: pd.Timestamp, fitted: FittedAttributes
) -> dict[str, np.ndarray | pd.Series]:
    """Feature name -> one value per account (accounts-table order) as of ``as_of``; only
    touchpoints and exposures strictly before ``as_of`` count. ``prep`` holds their account
    codes and times (computed once per data set)."""
    out: dict[str, np.ndarray | pd.Series] = {}
    accounts = data.accounts
    for name, kind in fitted.declaration.of("accounts").items():
        values = accounts[name] if name in accounts else pd.Series(np.nan, index=accounts.index)
        if kind == "number":
            out[f"account_{name}"] = _numbers(values)
        else:
            levels = fitted.levels_of("accounts", name)
            out[f"account_{name}"] = _categorical(_level_codes(values, levels), levels)
    as_of_ns = int(as_of.as_unit("ns").value)
    arrays = {
        "touchpoints": (prep.tp_account, prep.tp_ns),
        "exposures": (prep.exp_account, prep.exp_ns),
    }
    for table, (account, ns) in arrays.items():
        declared = fitted.declaration.of(table)
        frame = getattr(data, table)
        if not declared:
            continue
        rows = np.flatnonzero((ns < as_of_ns) & (account >= 0))
        events = _Events(prep.n_accounts, account[rows], as_of_ns - ns[rows], ns[rows])
        for name, kind in declared.items():
            values = (
                frame[name].iloc[rows] if name in frame else pd.Series(np.nan, index=rows)
            ).reset_index(drop=True)
            out.update(_event_features(events, table, name, kind, values, fitted))
    return out


@dataclass(frozen=True)
class _Events:
    """The events (touchpoints or exposures) of known accounts before one as-of date."""

    n_accounts: int
    account: np.ndarray
    age_ns: np.ndarray
    ns: np.ndarray


def _event_features(
    events: _Events,
    table: str,
    name: str,
    kind: str,
    values: pd.Series,
    fitted: FittedAttributes,
) -> dict[str, np.ndarray | pd.Series]:
    prefix = attribute_prefix(table)
    n = events.n_accounts
    if kind == "number":
        number = _numbers(values)
        known = ~np.isnan(number)
        return {
            f"{prefix}_{name}_sum_{w}d": np.bincount(
                events.account[known],
                weights=np.where(events.age_ns[known] <= w * NS_PER_DAY, number[known], 0.0),
                minlength=n,
            )
            for w in WINDOWS_DAYS
        }
    levels = fitted.levels_of(table, name)
    level = _level_codes(values, levels)
    out: dict[str, np.ndarray | pd.Series] = {
        f"{prefix}_{name}_last": _categorical(_last_code(events, level), levels)
    }
    recent = (events.age_ns <= ENGAGEMENT_WINDOW_DAYS * NS_PER_DAY) & (level >= 0)
    for i, (_, slug) in enumerate(fitted.counted_levels(table, name)):
        hit = recent & (level == i)
        out[f"n_{prefix}_{name}_{slug}_{ENGAGEMENT_WINDOW_DAYS}d"] = np.bincount(
            events.account[hit], minlength=n
        )
    return out


def _last_code(events: _Events, level: np.ndarray) -> np.ndarray:
    """Per account, the level code of its latest event with a known value (-1 if none); at
    equal times the later level (more frequent levels come first) wins, so the answer does
    not depend on row order or partitioning."""
    result = np.full(events.n_accounts, -1, dtype=np.int64)
    known = np.flatnonzero(level >= 0)
    if len(known) == 0:
        return result
    order = known[np.lexsort((level[known], events.ns[known], events.account[known]))]
    account = events.account[order]
    is_last = np.append(account[1:] != account[:-1], True)
    result[account[is_last]] = level[order[is_last]]
    return result


def _numbers(values: pd.Series) -> np.ndarray:
    """``values`` as float64, NaN where missing. Validated data holds numbers already; a
    store row ingested under an older declaration may not, and reads as missing."""
    numeric = pd.to_numeric(values, errors="coerce")
    return np.asarray(numeric, dtype=np.float64)


def _level_codes(values: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """Positions of ``values`` (as text) in ``levels``; -1 when missing or not a level."""
    text = values.astype("str") if len(values) else pd.Series([], dtype="str")
    return codes(text, pd.Index(list(levels), dtype="str"))


def _categorical(level_codes: np.ndarray, levels: tuple[str, ...]) -> pd.Series:
    dtype = pd.CategoricalDtype(pd.Index(list(levels), dtype="str"))
    return pd.Series(pd.Categorical.from_codes(level_codes, dtype=dtype))
